"""Services in queue mode sharing one catalog: they divide the submitted transfers, and
when one is killed the others finish its transfers, resuming them. The copies go to an
SSH host (a real sshd on 127.0.0.1), long enough for a service to die in the middle."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from streamflow_data import (
    CatalogSettings,
    ConfigurationError,
    DefaultDataManager,
    ExecutionLocation,
)
from streamflow_data.catalog import Catalog
from streamflow_data.catalog.queue import QueuedTransfer
from streamflow_data.remote import RemoteDataManager
from streamflow_data.service import Service
from tests.serving import config_arguments, serve_processes, socket_directory
from tests.ssh.sshd import SSHServer, login_user, owned_directory

LOCAL = ExecutionLocation("local", "localhost", local=True)
HOST = ExecutionLocation("ssh", "host-a")
FILES = 8
SIZE = 64 * 1024 * 1024


@contextmanager
def services(
    tmp_path: Path, catalog: str, count: int, host: SSHServer
) -> Iterator[list[subprocess.Popen[str]]]:
    """``count`` ``streamflow-data serve`` in queue mode on one catalog, a transfer at a
    time each, taking over a silent one's transfers after 2 s; ``host`` is deployment
    ``ssh``."""
    with socket_directory() as sockets:
        configs = _configs(tmp_path, sockets, catalog, count, host)
        with serve_processes(config_arguments(configs)) as started:
            yield started


def _configs(
    tmp_path: Path, sockets: Path, catalog: str, count: int, host: SSHServer
) -> list[Path]:
    """The configuration file of each of :func:`services`."""
    base = host.directory.parent
    configs = []
    for number in range(count):
        config = tmp_path / f"service-{number}.toml"
        config.write_text(
            f'[catalog]\npath = "{catalog}"\nstale_lock_after = 2.0\nfollow_interval = 0.1\n'
            f'[service]\nlisten = "unix:{sockets}/{number}.sock"\nqueue = true\n'
            "queue_concurrency = 1\n"
            f'[deployments.ssh]\ntype = "ssh"\nusername = "{login_user()}"\n'
            f'nodes = [{{ hostname = "127.0.0.1", port = {host.port}, name = "host-a" }}]\n'
            f'client_keys = ["{base / "client_key"}"]\nknown_hosts = "{base / "known_hosts"}"\n'
        )
        configs.append(config)
    return configs


def _copying(directory: Path) -> bool:
    """Whether a copy into ``directory`` has written data and not been published."""
    return any(entry.name != "file" and entry.stat().st_size for entry in directory.iterdir())


async def test_a_killed_services_transfers_are_finished_by_the_others(
    tmp_path: Path, catalog_path: str, ssh_servers: list[SSHServer], remote_dir: Path
) -> None:
    source = tmp_path / "src"
    await asyncio.to_thread(source.mkdir)
    for number in range(FILES):
        await asyncio.to_thread((source / f"{number}").write_bytes, bytes([number]) * SIZE)
        await asyncio.to_thread(owned_directory, remote_dir / f"{number}")
    with services(tmp_path, catalog_path, 3, ssh_servers[0]) as running:
        catalog = await Catalog.open(CatalogSettings(path=catalog_path))
        try:
            client = RemoteDataManager(_url_of(tmp_path, 1))
            async with client:
                for number in range(FILES):
                    client.register_path(LOCAL, str(source / f"{number}"))
                await client.flush()
                submitted = [
                    asyncio.create_task(
                        client.transfer_to(
                            LOCAL,
                            str(source / f"{number}"),
                            [(HOST, str(remote_dir / f"{number}" / "file"))],
                            writable=True,
                        )
                    )
                    for number in range(FILES)
                ]
                # Either service the client does not talk to, whichever copies first (an
                # idle one looks at the queue up to 2 s late: it may get no transfer).
                held, victim = await _midway(catalog, [running[0], running[2]])
                os.killpg(victim.pid, signal.SIGKILL)  # a lost machine: no goodbye
                published = {
                    n: (remote_dir / f"{n}" / "file").stat()
                    for n in range(FILES)
                    if (remote_dir / f"{n}" / "file").exists()
                }
                await asyncio.wait_for(asyncio.gather(*submitted), 120)
            rows = await _recorded(catalog)
        finally:
            await catalog.close()
    assert {row.state for row in rows} == {"done"}
    taken_over = next(row for row in rows if row.id == held)
    # The victim had claimed it (``_midway``): the work was divided; a survivor ended it.
    assert taken_over.attempts == 2 and str(victim.pid) not in str(taken_over.owner)
    for number in range(FILES):
        final = remote_dir / f"{number}" / "file"
        assert await asyncio.to_thread(final.read_bytes) == bytes([number]) * SIZE
        assert sorted(p.name for p in final.parent.iterdir()) == ["file"]  # no leftovers
    for number, before in published.items():  # each file written once: not again
        after = (remote_dir / f"{number}" / "file").stat()
        assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


async def _recorded(catalog: Catalog) -> list[QueuedTransfer]:
    """The queue's rows once every outcome is recorded (a worker records it just after
    its service reports it)."""
    for _ in range(200):  # bounded: 10 s
        rows = await catalog.queue.some(list(range(1, FILES + 1)))
        if all(row.state != "running" for row in rows):
            return rows
        await asyncio.sleep(0.05)
    raise AssertionError("outcomes never recorded")


def _url_of(tmp_path: Path, number: int) -> str:
    config = (tmp_path / f"service-{number}.toml").read_text()
    listen = next(line for line in config.splitlines() if line.startswith("listen"))
    return "unix://" + listen.split('"')[1].removeprefix("unix:")


async def _midway(
    catalog: Catalog, candidates: list[subprocess.Popen[str]]
) -> tuple[int, subprocess.Popen[str]]:
    """Until one of the ``candidates`` is in the middle of copying a transfer: the
    transfer's id and that service."""
    for _ in range(1000):  # bounded: 20 s
        for row in await catalog.queue.some(list(range(1, FILES + 1))):
            directory = Path(row.targets[0][2]).parent
            for service in candidates:
                owned = f":{service.pid}:" in str(row.owner)
                if row.state == "running" and owned and _copying(directory):
                    return row.id, service
        await asyncio.sleep(0.02)
    raise AssertionError("neither service started a copy")


async def test_queue_mode_needs_a_shared_catalog() -> None:
    async with DefaultDataManager(catalog=":memory:") as manager, asyncio.TaskGroup() as tasks:
        with pytest.raises(ConfigurationError, match="queue mode needs a catalog"):
            Service(manager, tasks, queue=2)
