"""A transfer of a remote source that another transfer is fetching to the local node
sends that copy on: the source is read once."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from streamflow_data import DefaultDataManager, ExecutionLocation, TransferError
from tests.helpers import SIZE, SMALL
from tests.wrappers import WrappingConnector

REMOTE = ExecutionLocation("remote", "localhost", local=False)
NODE = ExecutionLocation("node", "localhost", local=True)
OTHER = ExecutionLocation("other", "localhost", local=False)


def _hosts(base: Path, disappear_after_writes: int | None = None) -> dict[str, WrappingConnector]:
    """The remote source's host, this node (whose writes stall until released, and may
    fail) and another remote host."""
    for name in ("remote", "node", "other"):
        (base / name).mkdir()
    return {
        "remote": WrappingConnector(str(base / "remote")),
        "node": WrappingConnector(
            str(base / "node"), stall_writes=True, disappear_after_writes=disappear_after_writes
        ),
        "other": WrappingConnector(str(base / "other")),
    }


async def _pending(manager: DefaultDataManager, path: str, location: ExecutionLocation) -> None:
    """Wait until a transfer has registered its destination ``path`` on ``location``."""
    for _ in range(500):
        if manager.get_data_locations(path, deployment=location.deployment):
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{path} on {location} was never registered")


@pytest.mark.parametrize("writable", [True, False])
async def test_a_second_transfer_sends_the_local_copy_on(tmp_path: Path, writable: bool) -> None:
    hosts = _hosts(tmp_path)
    data = os.urandom(SIZE)
    await asyncio.to_thread((tmp_path / "remote" / "big").write_bytes, data)
    finished: list[str] = []
    async with DefaultDataManager(hosts, settings=SMALL) as manager:
        manager.register_path(REMOTE, "/big")

        async def copy(location: ExecutionLocation, path: str, writable: bool) -> None:
            await manager.transfer_data(REMOTE, "/big", [location], path, writable)
            finished.append(location.deployment)

        async with asyncio.TaskGroup() as group:
            group.create_task(copy(NODE, "/fetched", writable))
            await asyncio.wait_for(hosts["node"].write_started.wait(), 5)
            group.create_task(copy(OTHER, "/sent", False))
            await _pending(manager, "/sent", OTHER)
            hosts["node"].release.set()
        assert hosts["remote"].bytes_read == SIZE  # once, for both
        assert hosts["node"].bytes_read == SIZE  # the local copy, sent on
        # A writable fetch returns once its copy is read, as its caller may change it; a
        # copy that is not writable is the source's replica, not to be changed.
        assert finished == (["other", "node"] if writable else ["node", "other"])
        # The copy sent on is the source's replica, related to it as a non-writable copy is.
        related = {(r.deployment, r.path) for r in manager.get_data_locations("/big")}
        sent = {("remote", "/big"), ("other", "/sent")}
        assert related == (sent if writable else sent | {("node", "/fetched")})
    for name, path in (("node", "fetched"), ("other", "sent")):
        assert await asyncio.to_thread((tmp_path / name / path).read_bytes) == data


async def test_a_failed_fetch_leaves_its_readers_to_read_the_source(tmp_path: Path) -> None:
    hosts = _hosts(tmp_path, disappear_after_writes=0)
    data = os.urandom(SIZE)
    await asyncio.to_thread((tmp_path / "remote" / "big").write_bytes, data)
    async with DefaultDataManager(hosts, settings=SMALL) as manager:
        manager.register_path(REMOTE, "/big")
        fetch = asyncio.create_task(manager.transfer_data(REMOTE, "/big", [NODE], "/fetched"))
        await asyncio.wait_for(hosts["node"].write_started.wait(), 5)
        send = asyncio.create_task(manager.transfer_data(REMOTE, "/big", [OTHER], "/sent"))
        await _pending(manager, "/sent", OTHER)
        hosts["node"].release.set()
        with pytest.raises(TransferError):
            await fetch
        await send
        assert hosts["node"].bytes_read == 0
        [sent] = manager.get_data_locations("/sent", deployment="other")
        assert sent.valid
    assert await asyncio.to_thread((tmp_path / "other" / "sent").read_bytes) == data


async def test_a_transfer_with_a_target_beside_its_source_reads_the_source(
    tmp_path: Path,
) -> None:
    hosts = _hosts(tmp_path)
    await asyncio.to_thread((tmp_path / "remote" / "big").write_bytes, os.urandom(SIZE))
    async with DefaultDataManager(hosts, settings=SMALL) as manager:
        manager.register_path(REMOTE, "/big")
        fetch = asyncio.create_task(manager.transfer_data(REMOTE, "/big", [NODE], "/fetched"))
        await asyncio.wait_for(hosts["node"].write_started.wait(), 5)
        targets = [(OTHER, "/sent"), (REMOTE, "/beside")]
        send = asyncio.create_task(manager.transfer_to(REMOTE, "/big", targets))
        await _pending(manager, "/sent", OTHER)
        hosts["node"].release.set()
        await asyncio.gather(fetch, send)
        assert hosts["node"].bytes_read == 0


async def _fetched(tmp_path: Path) -> tuple[dict[str, WrappingConnector], DefaultDataManager]:
    """The hosts, and an open manager that has fetched the remote ``/big`` to this node's
    ``/fetched``, writable."""
    hosts = _hosts(tmp_path)
    hosts["node"].release.set()
    await asyncio.to_thread((tmp_path / "remote" / "big").write_bytes, os.urandom(SIZE))
    manager = await DefaultDataManager(hosts, settings=SMALL).open()
    manager.register_path(REMOTE, "/big")
    await manager.transfer_data(REMOTE, "/big", [NODE], "/fetched", True)
    return hosts, manager


async def test_a_later_transfer_sends_the_kept_copy_on(tmp_path: Path) -> None:
    hosts, manager = await _fetched(tmp_path)
    async with manager:
        await manager.transfer_data(REMOTE, "/big", [OTHER], "/sent")
        assert hosts["remote"].bytes_read == SIZE
        assert hosts["node"].bytes_read == SIZE
    sent = await asyncio.to_thread((tmp_path / "other" / "sent").read_bytes)
    assert sent == await asyncio.to_thread((tmp_path / "remote" / "big").read_bytes)


@pytest.mark.parametrize("changed", ["remote/big", "node/fetched"])
async def test_a_changed_source_or_copy_is_not_sent_on(tmp_path: Path, changed: str) -> None:
    hosts, manager = await _fetched(tmp_path)
    async with manager:
        path = tmp_path / changed
        await asyncio.to_thread(path.write_bytes, os.urandom(SIZE))  # the same size
        await asyncio.to_thread(os.utime, path, ns=(1, 1))
        await manager.transfer_data(REMOTE, "/big", [OTHER], "/sent")
        assert hosts["remote"].bytes_read == 2 * SIZE
        assert hosts["node"].bytes_read == 0
    sent = await asyncio.to_thread((tmp_path / "other" / "sent").read_bytes)
    assert sent == await asyncio.to_thread((tmp_path / "remote" / "big").read_bytes)


async def test_a_fetch_that_finds_its_kept_copy_gone_is_joined_all_the_same(
    tmp_path: Path,
) -> None:
    hosts, manager = await _fetched(tmp_path)
    async with manager:
        await asyncio.to_thread(os.remove, tmp_path / "node" / "fetched")
        node = hosts["node"]
        node.write_started, node.release = asyncio.Event(), asyncio.Event()
        fetch = asyncio.create_task(manager.transfer_data(REMOTE, "/big", [NODE], "/again"))
        await asyncio.wait_for(node.write_started.wait(), 5)
        send = asyncio.create_task(manager.transfer_data(REMOTE, "/big", [OTHER], "/sent"))
        await _pending(manager, "/sent", OTHER)
        node.release.set()
        await asyncio.gather(fetch, send)
        assert hosts["remote"].bytes_read == 2 * SIZE  # each fetch once
        assert node.bytes_read == SIZE  # the second fetch's copy, sent on
