"""Destination locks: managers sharing a catalog never write the same path at once."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from streamflow_data import (
    CatalogSettings,
    DefaultDataManager,
    ExecutionLocation,
    TransferLockedError,
)
from streamflow_data.catalog import Catalog
from streamflow_data.catalog.replicas import location_key
from tests.conftest import LOCAL
from tests.helpers import Hosts

ROOT = Path(__file__).parent.parent


def _managers(
    tmp_path: Path, catalog: str, **settings: object
) -> tuple[Hosts, Hosts, CatalogSettings]:
    """Two sets of connectors onto the same "hosts", for two managers."""
    first, second = Hosts(tmp_path / "hosts"), Hosts(tmp_path / "hosts")
    first.add("source")
    first.add("dest", stall_writes=True)
    second.connectors = {name: type(c)(c.root) for name, c in first.connectors.items()}
    first.path("source", "/data").write_bytes(os.urandom(9_000_000))
    return first, second, CatalogSettings(path=catalog, **settings)  # type: ignore[arg-type]


SOURCE = ExecutionLocation("source", "localhost", local=True)
DEST = ExecutionLocation("dest", "localhost", local=True)


async def test_a_second_manager_fails_at_once_on_a_locked_destination(
    tmp_path: Path, catalog_path: str
) -> None:
    first, second, settings = _managers(tmp_path, catalog_path, lock_policy="fail")
    async with (
        DefaultDataManager(dict(first.connectors), catalog=settings) as one,
        DefaultDataManager(dict(second.connectors), catalog=settings) as two,
    ):
        one.register_path(SOURCE, "/data")
        two.register_path(SOURCE, "/data")
        writing = asyncio.create_task(one.transfer_data(SOURCE, "/data", [DEST], "/copy"))
        await first.connectors["dest"].write_started.wait()
        holder = f"process {os.getpid()} on {socket.gethostname()}"
        for path in ["/copy", "/copy/inside", "/"]:
            with pytest.raises(TransferLockedError, match=holder):
                await two.transfer_data(SOURCE, "/data", [DEST], path)
        await two.transfer_data(SOURCE, "/data", [DEST], "/elsewhere")  # no conflict
        assert two.get_data_locations("/copy", deployment="dest") == []
        first.connectors["dest"].release.set()
        await writing
        await two.transfer_data(SOURCE, "/data", [DEST], "/copy")  # free again


async def test_a_waiting_manager_writes_after_the_first_one(
    tmp_path: Path, catalog_path: str
) -> None:
    first, second, settings = _managers(tmp_path, catalog_path, lock_policy="wait")
    finished: list[str] = []
    async with (
        DefaultDataManager(dict(first.connectors), catalog=settings) as one,
        DefaultDataManager(dict(second.connectors), catalog=settings) as two,
    ):
        one.register_path(SOURCE, "/data")
        two.register_path(SOURCE, "/data")

        async def copy(manager: DefaultDataManager, name: str) -> None:
            await manager.transfer_data(SOURCE, "/data", [DEST], "/copy")
            finished.append(name)

        async with asyncio.TaskGroup() as group:
            group.create_task(copy(one, "first"))
            await first.connectors["dest"].write_started.wait()
            group.create_task(copy(two, "second"))
            await asyncio.sleep(0.3)
            assert finished == []  # the second waits for the lock
            first.connectors["dest"].release.set()
    assert finished == ["first", "second"]


async def _plant_lock(catalog: str, path: str, host: str, pid: int, heartbeat: float) -> None:
    opened = await Catalog.open(CatalogSettings(path=catalog))
    try:
        async with opened.database.transaction() as transaction:
            await transaction.execute(
                "INSERT INTO locks (location, path, owner, holder, host, pid, heartbeat) "
                "VALUES (?, ?, 'someone', 'a planted holder', ?, ?, ?)",
                (location_key(LOCAL), path, host, pid, heartbeat),
            )
    finally:
        await opened.close()


def _finished_pid() -> int:
    """The pid of a process that has exited."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


@pytest.mark.parametrize(
    ("host", "age", "stale_after", "taken"),
    [
        ("this-host", 0.0, 30.0, True),  # its process is gone: taken over at once
        ("another-host", 5.0, 1.0, True),  # not refreshed for too long: taken over
        ("another-host", 0.0, 30.0, False),  # alive elsewhere: not taken
    ],
    ids=["dead-process", "stale-heartbeat", "live-holder"],
)
async def test_locks_of_dead_holders_are_taken_over(
    tmp_path: Path, catalog_path: str, host: str, age: float, stale_after: float, taken: bool
) -> None:
    catalog = catalog_path
    settings = CatalogSettings(path=catalog, stale_lock_after=stale_after, lock_timeout=0.3)
    src, dst = tmp_path / "src", tmp_path / "copy"
    src.write_text("data")
    async with DefaultDataManager(catalog=settings) as manager:
        manager.register_path(LOCAL, str(src))
        await manager.flush()
        holder_host = socket.gethostname() if host == "this-host" else host
        pid = await asyncio.to_thread(_finished_pid)
        await _plant_lock(catalog, str(dst), holder_host, pid, time.time() - age)
        transfer = manager.transfer_data(LOCAL, str(src), [LOCAL], str(dst), writable=True)
        if taken:
            await transfer
            assert dst.read_text() == "data"
        else:
            with pytest.raises(TransferLockedError, match="a planted holder"):
                await transfer
            assert not dst.exists()


async def test_a_lock_held_by_another_process_blocks_until_it_is_killed(
    tmp_path: Path, catalog_path: str
) -> None:
    src = tmp_path / "big.bin"
    src.write_bytes(os.urandom(32 * 1024 * 1024))
    catalog = catalog_path
    dst = str(tmp_path / "copy.bin")
    command = [sys.executable, "-m", "benchmarks.resume_child", catalog, str(src), dst]
    child = await asyncio.create_subprocess_exec(
        *command, "--delay", "0.5", stdout=asyncio.subprocess.PIPE, cwd=ROOT
    )
    try:
        assert child.stdout is not None
        await child.stdout.readline()  # the first progress line: it holds the lock
        fail = CatalogSettings(path=catalog, lock_policy="fail")
        async with DefaultDataManager(catalog=fail) as manager:
            manager.register_path(LOCAL, str(src))
            with pytest.raises(TransferLockedError, match=f"process {child.pid} on"):
                await manager.transfer_data(LOCAL, str(src), [LOCAL], dst, writable=True)
    finally:
        child.kill()
        await child.wait()
    started = time.monotonic()
    async with DefaultDataManager(catalog=catalog) as manager:  # waits by default
        manager.register_path(LOCAL, str(src))
        await manager.transfer_data(LOCAL, str(src), [LOCAL], dst, writable=True)
    assert time.monotonic() - started < 10  # taken over at once, not after the stale delay
    assert await asyncio.to_thread(Path(dst).read_bytes) == src.read_bytes()
