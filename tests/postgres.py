"""A real PostgreSQL server for the tests: Debian's ``postgresql`` package, ``initdb`` into
a temporary directory, ``pg_ctl`` on 127.0.0.1 with a free port.

PostgreSQL refuses to run as root: as root, the server runs as the package's ``postgres``
user (``runuser``). ``bash .ci/install`` installs the package when it is missing.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

__all__ = ["PostgresServer", "postgres_bin", "start_postgres"]

USER = "sfd"
"""The database role the tests connect as (trusted on 127.0.0.1: no password)."""


def postgres_bin() -> Path | None:
    """The directory of the newest installed PostgreSQL's programs, if any."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=_version)
    return Path(found[-1]).parent if found else None


def _version(path: str) -> int:
    return int(Path(path).parent.parent.name)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class PostgresServer:
    """A running server with one database, ``catalog``."""

    directory: Path
    port: int
    bin: Path
    databases: int = 0

    @property
    def url(self) -> str:
        return f"postgresql://{USER}@127.0.0.1:{self.port}/catalog"

    def run(self, program: str, *arguments: str) -> None:
        """Run one of the server's programs, as its user."""
        command = [str(self.bin / program), *arguments]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=120)

    def create_database(self) -> str:
        """A new, empty database; its URL."""
        self.databases += 1
        name = f"test{self.databases}"
        self.run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", USER, name)
        return self.url.rpartition("/")[0] + f"/{name}"

    def start(self) -> None:
        options = f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.directory}"
        data, log = str(self.directory / "data"), str(self.directory / "log")
        self.run("pg_ctl", "-D", data, "-l", log, "-o", options, "-w", "start")

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (``immediate``: as if killed, recovering at the next start)."""
        self.run("pg_ctl", "-D", str(self.directory / "data"), "-m", mode, "-w", "stop")


def start_postgres(directory: Path) -> PostgresServer:
    """Create a cluster in ``directory`` (which must not exist; as root, its parent must
    be traversable by the ``postgres`` user) and start it."""
    binaries = postgres_bin()
    if binaries is None:
        raise RuntimeError("PostgreSQL is missing: run `bash .ci/install` (postgresql)")
    directory.mkdir(mode=0o700)
    if os.geteuid() == 0:
        shutil.chown(directory, "postgres", "postgres")
    server = PostgresServer(directory, _free_port(), binaries)
    data = str(directory / "data")
    server.run("initdb", "-D", data, "-U", USER, "-A", "trust", "-E", "UTF8", "--no-sync")
    server.start()
    server.run("createdb", "-h", "127.0.0.1", "-p", str(server.port), "-U", USER, "catalog")
    return server
