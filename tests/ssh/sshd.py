"""Real OpenSSH servers for the tests: ``/usr/sbin/sshd`` on 127.0.0.1 with its own keys.

Each server gets a free port, a host key, a private configuration and an
``authorized_keys`` with the client key; the client gets a ``known_hosts`` listing the
servers. Servers are stopped by PID. ``bash .ci/install`` installs openssh-server.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import asyncssh

SSHD = "/usr/sbin/sshd"
TEST_USER = "sfd-ssh-test"
"""Logging in as root would run root's shell start-up files (on these machines a pyenv
init costing 150 ms per command) and bypass permission checks; as root, the tests log in
as this unprivileged user with a plain ``/bin/sh``, created when missing."""


def login_user() -> str:
    """The user the tests log in as: the dedicated test user as root, else ourselves."""
    if os.geteuid() != 0:
        return getpass.getuser()
    _ensure_user(TEST_USER, "/bin/sh")
    return TEST_USER


def _ensure_user(name: str, shell: str) -> None:
    """Create the user ``name`` with ``shell`` when missing (as root)."""
    if subprocess.run(["id", name], capture_output=True, check=False).returncode:
        # "*": no password, yet not locked (sshd refuses locked accounts); a home, or
        # sshd complains on every command's stderr.
        command = ["useradd", "--system", "--create-home", "--shell", shell]
        subprocess.run([*command, "--password", "*", name], check=True)


SLOW_LOGIN_USER = "sfd-ssh-login"


def slow_login_user(seconds: float) -> str:
    """A user whose login shell costs ``seconds`` per command, as on a login node whose
    shell start-up loads a module system or a version manager: bash, with a
    ``~/.bashrc`` that sleeps (bash reads it for every command sshd starts). Created, or
    its ``.bashrc`` rewritten, as root; else the user we are, unchanged."""
    if os.geteuid() != 0:
        return login_user()
    _ensure_user(SLOW_LOGIN_USER, "/bin/bash")
    home = Path("~" + SLOW_LOGIN_USER).expanduser()
    (home / ".bashrc").write_text(f"sleep {seconds:.3f}\n")
    return SLOW_LOGIN_USER


def owned_directory(path: Path, user: str | None = None) -> Path:
    """Create ``path`` (its parents must be traversable) owned by ``user`` (by default
    the login user)."""
    path.mkdir(mode=0o755)
    if os.geteuid() == 0:
        shutil.chown(path, user or login_user())
    return path


@dataclass
class SSHServer:
    """A running sshd."""

    name: str
    port: int
    process: subprocess.Popen[bytes]
    directory: Path
    host_public_key: str
    own_view: tuple[Path, Path] | None = None
    """(shared, own): the server's sessions see the directory ``own`` at the path
    ``shared`` (see :func:`start_server`)."""

    def stop(self) -> None:
        """Kill it, and so every connection to it, by PID: the listener's descendants
        first (a connection's unprivileged process, a grandchild, carries its data and
        outlives its parent's death), then the listener."""
        if self.process.poll() is None:
            for pid in _descendants(self.process.pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def start(self) -> None:
        """Start it again on the same port, with the same keys."""
        self.process = _launch(self.directory, self.own_view)
        _wait_listening(self.port, self.process)


def _descendants(pid: int) -> list[int]:
    """The processes below ``pid``, parents before their children (from ``/proc``)."""
    parents: dict[int, int] = {}
    for entry in filter(str.isdigit, os.listdir("/proc")):
        with contextlib.suppress(OSError), open(f"/proc/{entry}/stat") as stat:
            parents[int(entry)] = int(stat.read().rsplit(")", 1)[1].split()[1])
    found, frontier = [], [pid]
    while frontier:
        frontier = [child for child, parent in parents.items() if parent in frontier]
        found += frontier
    return found


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _launch(directory: Path, own_view: tuple[Path, Path] | None) -> subprocess.Popen[bytes]:
    argv = [SSHD, "-D", "-f", str(directory / "sshd_config"), "-E", str(directory / "sshd.log")]
    if own_view is not None:
        shared, own = own_view
        mount = 'mount --bind "$1" "$2" && shift 2 && exec "$@"'
        unshare = ["unshare", "--mount", "--propagation", "private"]
        argv = [*unshare, "sh", "-c", mount, "sh", str(own), str(shared), *argv]
    return subprocess.Popen(argv, stdin=subprocess.DEVNULL)


def _wait_listening(port: int, process: subprocess.Popen[bytes]) -> None:
    for _ in range(100):  # at most 10 s
        if process.poll() is not None:
            raise RuntimeError(f"sshd exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"sshd did not listen on port {port}")


def client_key(directory: Path) -> Path:
    """A client key pair in ``directory`` (created once)."""
    path = directory / "client_key"
    if not path.exists():
        key = asyncssh.generate_private_key("ssh-ed25519")
        key.write_private_key(str(path))
        os.chmod(path, 0o600)
        key.write_public_key(str(path) + ".pub")
    return path


def start_server(
    name: str,
    directory: Path,
    client: Path,
    own_view: tuple[Path, Path] | None = None,
    settings: str = "",
) -> SSHServer:
    """Configure and start an sshd serving the current user with the ``client`` key.

    With ``own_view`` (shared, own), as root, the server runs in a mount namespace of its
    own where the directory ``own`` is mounted at ``shared``: a second host whose files at
    a path are not the first host's (the benchmark's hosts share one machine).
    ``settings`` are more ``sshd_config`` lines, ahead of the defaults, which they
    override (``SetEnv PATH=...`` gives the sessions programs of the test's own;
    ``MaxSessions 4``).
    """
    if not os.path.exists(SSHD):
        raise RuntimeError(f"{SSHD} is missing: run `bash .ci/install` (openssh-server)")
    if os.geteuid() == 0:
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
    directory.mkdir(parents=True)
    host_key = asyncssh.generate_private_key("ssh-ed25519")
    host_key.write_private_key(str(directory / "host_key"))
    os.chmod(directory / "host_key", 0o600)
    shutil.copy(str(client) + ".pub", directory / "authorized_keys")
    port = _free_port()
    (directory / "sshd_config").write_text(  # sshd keeps the first value of a keyword
        f"""{settings}Port {port}
ListenAddress 127.0.0.1
HostKey {directory / "host_key"}
AuthorizedKeysFile {directory / "authorized_keys"}
PidFile {directory / "sshd.pid"}
AllowUsers {login_user()} {SLOW_LOGIN_USER}
StrictModes no
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
MaxSessions 32
MaxStartups 64
LogLevel ERROR
"""
    )
    process = _launch(directory, own_view)
    _wait_listening(port, process)
    public = host_key.export_public_key("openssh").decode().strip()
    return SSHServer(name, port, process, directory, public, own_view)


def known_hosts(servers: list[SSHServer], path: Path) -> Path:
    """A known_hosts file listing ``servers``."""
    path.write_text(
        "".join(f"[127.0.0.1]:{server.port} {server.host_public_key}\n" for server in servers)
    )
    return path
