"""Rules 6 and 7: transfer_data semantics, failures and concurrency, on local storage."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from pathlib import Path

import pytest

from streamflow_data import (
    DataManager,
    DataType,
    DefaultDataManager,
    ExecutionLocation,
    InvalidPathError,
    LocalConnector,
    PathNotFoundError,
    StorageFullError,
    StreamFlowDataError,
    TransferError,
    TransferProgress,
    TransferSettings,
    UnknownDeploymentError,
    UnknownLocationError,
    UnknownPathError,
    UnsafePathError,
    Verification,
)
from tests.helpers import SIZE, SMALL, TREE_BYTES, Hosts, LastSnapshot, make_tree, snapshot
from tests.test_engine import put_file

LOCAL = ExecutionLocation("local", "localhost", local=True)
SCRATCH = ExecutionLocation("scratch", "localhost", local=True)
FAULTY = ExecutionLocation("faulty", "localhost", local=True)


@pytest.fixture
def manager(contract_manager: DataManager) -> DataManager:
    """The contract's rules hold in this process and through a service alike."""
    return contract_manager


@pytest.fixture
async def tree(tmp_path: Path) -> Path:
    root = tmp_path / "src"
    await asyncio.to_thread(make_tree, root)
    return root


# -- the source -----------------------------------------------------------------------------------


async def test_source_must_be_a_registered_replica(
    manager: DefaultDataManager, tmp_path: Path
) -> None:
    with pytest.raises(UnknownPathError, match=r"'/nope' .*local/localhost"):
        await manager.transfer_data(LOCAL, "/nope", [LOCAL], str(tmp_path / "d"))
    manager.register_path(LOCAL, str(tmp_path))
    manager.invalidate_location(LOCAL, str(tmp_path))
    with pytest.raises(UnknownPathError, match=str(tmp_path)):
        await manager.transfer_data(LOCAL, str(tmp_path), [LOCAL], str(tmp_path / "d"))


async def test_unknown_deployments_and_locations_are_typed_errors(
    manager: DefaultDataManager, tree: Path, tmp_path: Path
) -> None:
    manager.register_path(LOCAL, str(tree))
    with pytest.raises(UnknownDeploymentError, match="'hpc'"):
        await manager.transfer_data(LOCAL, str(tree), [ExecutionLocation("hpc", "n")], "/x")
    with pytest.raises(UnknownLocationError, match="'node-9'"):
        await manager.transfer_data(LOCAL, str(tree), [ExecutionLocation("local", "node-9")], "/x")
    tracked = ExecutionLocation("hpc", "n")
    manager.register_path(tracked, "/data/f")  # tracked, but nothing can move it
    with pytest.raises(UnknownDeploymentError):
        await manager.transfer_data(tracked, "/data/f", [LOCAL], str(tmp_path / "f"))
    assert not (tmp_path / "f").exists()


async def test_a_missing_source_file_fails_every_destination_and_is_invalidated(
    manager: DefaultDataManager, tmp_path: Path
) -> None:
    manager.register_path(LOCAL, str(tmp_path / "gone"))
    with pytest.raises(TransferError) as caught:
        await manager.transfer_data(
            LOCAL, str(tmp_path / "gone"), [LOCAL], str(tmp_path / "d"), True
        )
    assert isinstance(caught.value.failures[0].cause, PathNotFoundError)
    assert manager.get_data_locations(str(tmp_path / "gone")) == []
    assert manager.get_data_locations(str(tmp_path / "d")) == []


@pytest.mark.in_process_only("makes a pending replica in the graph itself")
async def test_waits_for_a_source_being_written(
    manager: DefaultDataManager, tmp_path: Path
) -> None:
    source = tmp_path / "f"
    pending = manager.mapper.register(LOCAL, str(source), available=False)
    copy = asyncio.create_task(
        manager.transfer_data(LOCAL, str(source), [LOCAL], str(tmp_path / "g"), writable=True)
    )
    await asyncio.sleep(0.05)
    assert not copy.done()
    await asyncio.to_thread(source.write_bytes, b"finally")
    pending.mark_available()
    await asyncio.wait_for(copy, 5)
    assert await asyncio.to_thread((tmp_path / "g").read_bytes) == b"finally"


# -- same location --------------------------------------------------------------------------------


async def test_same_location_not_writable_makes_a_link(
    manager: DefaultDataManager, tree: Path, tmp_path: Path
) -> None:
    source = manager.register_path(LOCAL, str(tree))
    await manager.transfer_data(LOCAL, str(tree), [LOCAL], str(tmp_path / "work" / "in"))
    assert os.readlink(tmp_path / "work" / "in") == str(tree)
    [link] = manager.get_data_locations(
        str(tmp_path / "work" / "in"), data_type=DataType.SYMBOLIC_LINK
    )
    assert link.available
    assert set(manager.get_data_locations(str(tree))) == {source, link}
    manager.invalidate_location(LOCAL, str(tree))
    assert not link.valid, "the link follows its target's invalidation"


async def test_without_links_a_copy_beside_its_source_is_real_and_related(
    manager: DefaultDataManager, tree: Path, tmp_path: Path
) -> None:
    source = manager.register_path(LOCAL, str(tree))
    destination = tmp_path / "copy"
    await manager.transfer_to(LOCAL, str(tree), [(LOCAL, str(destination))], links=False)
    assert not destination.is_symlink()
    assert await asyncio.to_thread(snapshot, destination) == await asyncio.to_thread(snapshot, tree)
    copy = manager.mapper.find(LOCAL, str(destination))
    assert copy is not None and copy.data_type is DataType.PRIMARY
    assert set(manager.get_data_locations(str(tree))) == {source, copy}
    manager.invalidate_location(LOCAL, str(tree))
    assert copy.valid, "a real copy outlives its source's invalidation"


async def test_same_path_not_writable_is_a_no_op(manager: DefaultDataManager, tree: Path) -> None:
    source = manager.register_path(LOCAL, str(tree))
    before = len(manager.mapper)
    await manager.transfer_data(LOCAL, str(tree), [LOCAL], str(tree))
    assert len(manager.mapper) == before
    assert manager.get_data_locations(str(tree)) == [source]


async def test_same_location_writable_makes_an_unrelated_copy(
    manager: DefaultDataManager, tree: Path, tmp_path: Path
) -> None:
    source = manager.register_path(LOCAL, str(tree))
    destination = tmp_path / "copy"
    await manager.transfer_data(LOCAL, str(tree), [LOCAL], str(destination), writable=True)
    assert not destination.is_symlink()
    assert await asyncio.to_thread(snapshot, destination) == await asyncio.to_thread(snapshot, tree)
    assert manager.get_data_locations(str(tree)) == [source]
    [copy] = manager.get_data_locations(str(destination))
    assert copy.data_type is DataType.PRIMARY and copy.available


async def test_writable_in_place_detaches_the_replica(
    manager: DefaultDataManager, tree: Path
) -> None:
    source = manager.register_path(LOCAL, str(tree))
    remote = manager.register_path(ExecutionLocation("hpc", "n"), "/r")
    manager.register_relation(source, remote)
    await manager.transfer_data(LOCAL, str(tree), [LOCAL], str(tree), writable=True)
    assert manager.get_data_locations(str(tree)) == [source]
    assert manager.get_data_locations("/r") == [remote]


async def test_copy_into_itself_is_refused(manager: DefaultDataManager, tree: Path) -> None:
    manager.register_path(LOCAL, str(tree))
    with pytest.raises(InvalidPathError, match="inside"):
        await manager.transfer_data(LOCAL, str(tree), [LOCAL], str(tree / "sub" / "x"), True)


# -- other locations ------------------------------------------------------------------------------


async def test_tree_to_several_destinations_keeps_everything(tree: Path, hosts: Hosts) -> None:
    first, second = hosts.add("h1"), hosts.add("h2")
    progress: list[TransferProgress] = []
    async with DefaultDataManager(hosts.connectors, listeners=[progress.append]) as dm:
        source = dm.register_path(LOCAL, str(tree))
        await dm.transfer_data(LOCAL, str(tree), [first, second, first], "/out/tree")
        expected = await asyncio.to_thread(snapshot, tree)
        for name in ("h1", "h2"):
            assert await asyncio.to_thread(snapshot, hosts.path(name, "/out/tree")) == expected
        replicas = dm.get_data_locations("/out/tree")
        assert {(r.deployment, r.data_type) for r in replicas} == {
            ("h1", DataType.PRIMARY),
            ("h2", DataType.PRIMARY),
            ("local", DataType.PRIMARY),
        }
        assert source in replicas and len(replicas) == 3
        assert all(replica.available for replica in replicas)
    final = progress[-1]
    assert final.finished and final.files_done == final.files_total == 5
    assert final.bytes_done == final.bytes_total == TREE_BYTES
    assert [p.files_done for p in progress] == sorted(p.files_done for p in progress)


async def test_writable_copies_to_other_locations_are_not_related(tree: Path, hosts: Hosts) -> None:
    host = hosts.add("h1")
    async with DefaultDataManager(hosts.connectors) as dm:
        source = dm.register_path(LOCAL, str(tree / "small.txt"))
        await dm.transfer_data(LOCAL, str(tree / "small.txt"), [host], "/w", writable=True)
        [copy] = dm.get_data_locations("/w")
        assert copy.data_type is DataType.PRIMARY and copy.deployment == "h1"
        assert dm.get_data_locations(str(tree / "small.txt")) == [source]


async def test_a_file_lands_in_missing_parent_directories(
    manager: DefaultDataManager, tree: Path, tmp_path: Path
) -> None:
    manager.register_path(LOCAL, str(tree / "small.txt"))
    target = tmp_path / "a" / "b" / "c.txt"
    await manager.transfer_data(LOCAL, str(tree / "small.txt"), [LOCAL], str(target), True)
    assert await asyncio.to_thread(target.read_text) == "hello"


@pytest.mark.parametrize("size", [100, 3 << 20], ids=["small", "big"])
async def test_a_link_in_the_destination_tree_is_never_written_through(
    manager: DefaultDataManager, tmp_path: Path, size: int
) -> None:
    source, outside, destination = tmp_path / "src", tmp_path / "outside", tmp_path / "dst"
    for directory in (source / "sub", outside, destination):
        directory.mkdir(parents=True)
    (source / "sub" / "data.bin").write_bytes(os.urandom(size))
    (destination / "sub").symlink_to(outside)
    manager.register_path(LOCAL, str(source))
    with pytest.raises(TransferError) as caught:
        await manager.transfer_data(LOCAL, str(source), [LOCAL], str(destination), True)
    assert await asyncio.to_thread(os.listdir, outside) == []
    (failure,) = caught.value.failures
    assert isinstance(failure.cause, UnsafePathError)
    assert f"'{destination}/sub' on local/localhost" in str(failure.cause)


async def test_source_is_read_once_for_many_destinations(tree: Path, hosts: Hosts) -> None:
    counting = hosts.add("src")
    await asyncio.to_thread(make_tree, hosts.path("src", "/data"))
    destinations = [hosts.add(f"d{i}") for i in range(4)]
    settings = TransferSettings(block_size=65536)
    async with DefaultDataManager(hosts.connectors, settings=settings) as dm:
        dm.register_path(counting, "/data")
        await dm.transfer_data(counting, "/data", destinations, "/fan")
    assert hosts.connectors["src"].bytes_read == TREE_BYTES
    expected = await asyncio.to_thread(snapshot, hosts.path("src", "/data"))
    for index in range(4):
        assert await asyncio.to_thread(snapshot, hosts.path(f"d{index}", "/fan")) == expected


# -- failures -------------------------------------------------------------------------------------


async def test_a_failed_destination_leaves_nothing_and_the_others_succeed(
    tree: Path, hosts: Hosts
) -> None:
    faulty, good = hosts.add("faulty", fail_write_number=3), hosts.add("good")
    settings = TransferSettings(block_size=65536, max_concurrent_files=1)
    big = str(tree / "sub" / "big.bin")
    async with DefaultDataManager(hosts.connectors, settings=settings) as dm:
        dm.register_path(LOCAL, big)
        with pytest.raises(TransferError) as caught:
            await dm.transfer_data(LOCAL, big, [faulty, good], "/out/big.bin")
        [failure] = caught.value.failures
        assert failure.location == faulty and isinstance(failure.cause, StorageFullError)
        message = str(caught.value)
        assert "faulty/localhost:/out/big.bin" in message and "injected fault" in message
        assert dm.get_data_locations("/out/big.bin", deployment="faulty") == []
        assert len(dm.get_data_locations("/out/big.bin", deployment="good")) == 1
    content = await asyncio.to_thread(Path(big).read_bytes)
    assert await asyncio.to_thread(hosts.path("good", "/out/big.bin").read_bytes) == content
    assert os.listdir(hosts.path("faulty", "/out")) == [], "a partial file or temporary was left"


async def test_a_failed_tree_copy_removes_the_destination_tree(tree: Path, hosts: Hosts) -> None:
    faulty = hosts.add("faulty", fail_write_number=4)
    async with DefaultDataManager(hosts.connectors) as dm:
        dm.register_path(LOCAL, str(tree))
        with pytest.raises(TransferError):
            await dm.transfer_data(LOCAL, str(tree), [faulty], "/out")
        assert dm.get_data_locations("/out", deployment="faulty") == []
    assert not hosts.path("faulty", "/out").exists()


async def test_cancelling_a_transfer_leaves_nothing_and_wakes_waiters(
    tree: Path, hosts: Hosts
) -> None:
    stalled = hosts.add("stalled", stall_writes=True)
    async with DefaultDataManager(hosts.connectors) as dm:
        dm.register_path(LOCAL, str(tree))
        copy = asyncio.create_task(dm.transfer_data(LOCAL, str(tree), [stalled], "/out"))
        await asyncio.wait_for(hosts.connectors["stalled"].write_started.wait(), 5)
        [pending] = dm.get_data_locations("/out", deployment="stalled")
        assert not pending.available
        waiter = asyncio.create_task(pending.wait_available())
        copy.cancel()
        with pytest.raises(asyncio.CancelledError):
            await copy
        await asyncio.wait_for(waiter, 1)
        assert not pending.valid
        assert dm.get_data_locations("/out", deployment="stalled") == []
    assert not hosts.path("stalled", "/out").exists()


async def test_concurrent_transfers_to_one_destination_copy_once(tree: Path, hosts: Hosts) -> None:
    source = hosts.add("src")
    await asyncio.to_thread(make_tree, hosts.path("src", "/data"))
    destination = hosts.add("dst")
    async with DefaultDataManager(hosts.connectors) as dm:
        dm.register_path(source, "/data")
        async with asyncio.TaskGroup() as group:
            for _ in range(3):
                group.create_task(dm.transfer_data(source, "/data", [destination], "/shared"))
        assert hosts.connectors["src"].bytes_read == TREE_BYTES
        assert len(dm.get_data_locations("/shared", deployment="dst")) == 1
        # A different source for the same destination waits for the first, then copies.
        first, second = "/data/small.txt", "/data/sub/deeper/x"
        for path in (first, second):
            dm.register_path(source, path)
        before = hosts.connectors["src"].bytes_read
        async with asyncio.TaskGroup() as group:
            for path in (first, second):
                group.create_task(dm.transfer_data(source, path, [destination], "/one", True))
        assert hosts.connectors["src"].bytes_read - before == 5 + 100
        [replica] = dm.get_data_locations("/one", deployment="dst")
        assert replica.available
    assert await asyncio.to_thread(hosts.path("dst", "/one").read_text) == "x" * 100


async def test_a_closed_manager_refuses_transfers(tmp_path: Path) -> None:
    manager = DefaultDataManager()
    manager.register_path(LOCAL, str(tmp_path))
    await manager.close()
    await manager.close()
    with pytest.raises(StreamFlowDataError, match="closed"):
        await manager.transfer_data(LOCAL, str(tmp_path), [LOCAL], "/elsewhere", True)


async def test_a_copied_program_loses_its_setuid_bit(
    manager: DefaultDataManager, tmp_path: Path
) -> None:
    program = tmp_path / "program"
    program.write_bytes(b"#!/bin/sh\n")
    program.chmod(0o4755)
    manager.register_path(LOCAL, str(program))
    await manager.transfer_data(LOCAL, str(program), [LOCAL], str(tmp_path / "copy"), True)
    assert (await asyncio.to_thread(os.stat, tmp_path / "copy")).st_mode & 0o7777 == 0o755


@pytest.mark.parametrize(
    ("checksum", "size", "expected"),
    [
        ("crc32c", SIZE, Verification.STORED),  # blocks: the local writer reads each back
        ("crc32c", 100, Verification.STORED),  # a small file: written whole, read back
        ("none", SIZE, Verification.NONE),
    ],
)
async def test_each_destination_says_how_its_copies_were_checked(
    hosts: Hosts, checksum: str, size: int, expected: Verification
) -> None:
    source = hosts.add("src")
    await put_file(hosts, "src", "/f.bin", size)
    target = hosts.add("dst")
    finished = LastSnapshot()
    settings = SMALL.replace(checksum=checksum)
    async with DefaultDataManager(hosts.connectors, settings=settings, listeners=[finished]) as m:
        m.register_path(source, "/f.bin")
        await m.transfer_data(source, "/f.bin", [target], "/c.bin")
    assert finished.last is not None
    [destination] = finished.last.destinations
    assert destination.verification is expected


async def test_connectors_and_locations_can_join_a_running_manager(tmp_path: Path) -> None:
    """A workflow manager deploys as it goes: a deployment's connector is added, and a
    location that joins its deployment later is served."""

    class Growing(LocalConnector):
        names: tuple[str, ...] = ("first",)

        def locations(self, deployment: str) -> Sequence[ExecutionLocation]:
            return tuple(ExecutionLocation(deployment, n, local=True) for n in self.names)

    (tmp_path / "src").write_bytes(b"data")
    async with DefaultDataManager() as manager:
        manager.register_path(LOCAL, str(tmp_path / "src"))
        first = ExecutionLocation("later", "first", local=True)
        with pytest.raises(UnknownDeploymentError):
            await manager.transfer_data(LOCAL, str(tmp_path / "src"), [first], str(tmp_path / "a"))
        connector = Growing()
        manager.add_connector("later", connector)
        with pytest.raises(StreamFlowDataError, match="has a connector already"):
            manager.add_connector("later", Growing())
        await manager.transfer_data(LOCAL, str(tmp_path / "src"), [first], str(tmp_path / "a"))
        second = ExecutionLocation("later", "second", local=True)
        with pytest.raises(UnknownLocationError):
            manager.connector(second)
        connector.names = ("first", "second")
        await manager.transfer_data(LOCAL, str(tmp_path / "src"), [second], str(tmp_path / "b"))
        assert (tmp_path / "b").read_bytes() == b"data"
