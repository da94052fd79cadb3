"""The transfer engine (issue 3): chunks, blocks, fan-out, integrity, retries, progress."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Sequence

import pytest

from streamflow_data import (
    ChecksumMismatchError,
    DefaultDataManager,
    ExecutionLocation,
    StorageFullError,
    TransferCancelledError,
    TransferError,
    TransferProgress,
    TransferSettings,
)
from streamflow_data.connectors.base import FileKind, FileStat, WriteItem
from streamflow_data.errors import ConnectorError
from streamflow_data.transfer.batch import SmallFile, batches
from streamflow_data.transfer.blocks import BlockPool, BlockState
from streamflow_data.transfer.state import ChunkState, FileState, StateManager
from tests.helpers import SIZE, SMALL, Hosts
from tests.wrappers import (
    OneStreamWrappingConnector,
    SequentialWrappingConnector,
    WrappingConnector,
)


async def put_file(hosts: Hosts, host: str, path: str, size: int = SIZE) -> bytes:
    data = os.urandom(size)
    target = hosts.path(host, path)
    await asyncio.to_thread(target.parent.mkdir, parents=True, exist_ok=True)
    await asyncio.to_thread(target.write_bytes, data)
    return data


async def read(hosts: Hosts, host: str, path: str) -> bytes:
    return await asyncio.to_thread(hosts.path(host, path).read_bytes)


async def listing(hosts: Hosts, host: str, path: str) -> list[str]:
    return sorted(await asyncio.to_thread(os.listdir, hosts.path(host, path)))


# -- read once, bounded memory, parallelism --------------------------------------------------


@pytest.mark.parametrize("count", [1, 4])
async def test_the_source_is_read_once_whatever_the_destinations(hosts: Hosts, count: int) -> None:
    source = hosts.add("src")
    data = await put_file(hosts, "src", "/big.bin")
    targets = [hosts.add(f"d{i}") for i in range(count)]
    async with DefaultDataManager(hosts.connectors, settings=SMALL) as manager:
        manager.register_path(source, "/big.bin")
        await manager.transfer_data(source, "/big.bin", targets, "/copy.bin")
        assert 0 < manager.statistics.buffer_peak_bytes <= SMALL.memory_bound
    assert hosts.connectors["src"].bytes_read == len(data)
    for index in range(count):
        assert await read(hosts, f"d{index}", "/copy.bin") == data


@pytest.mark.parametrize("one_stream", [None, "src", "dst"])
async def test_chunks_of_one_file_move_in_parallel_unless_an_end_wants_one_stream(
    hosts: Hosts, one_stream: str | None
) -> None:
    """Chunks go in parallel for ranged destinations, one at a time when the connector
    of the source or of the destination says one stream fills its link
    (``chunk_streams``)."""

    def connector(name: str) -> type[WrappingConnector]:
        return OneStreamWrappingConnector if one_stream == name else WrappingConnector

    source = hosts.add("src", connector("src"))
    data = await put_file(hosts, "src", "/big.bin", 4_000_000)
    target = hosts.add("dst", connector("dst"))
    settings = SMALL.replace(block_count=16, max_concurrent_chunks=4)
    async with DefaultDataManager(hosts.connectors, settings=settings) as manager:
        manager.register_path(source, "/big.bin")
        await manager.transfer_data(source, "/big.bin", [target], "/copy.bin")
    most = hosts.connectors["src"].most_reads_in_flight
    assert most == 1 if one_stream else most > 1
    assert await read(hosts, "dst", "/copy.bin") == data


async def test_append_only_destinations_are_written_in_order(hosts: Hosts) -> None:
    source = hosts.add("src")
    data = await put_file(hosts, "src", "/big.bin")
    ranged, appending = hosts.add("ranged"), hosts.add("append", SequentialWrappingConnector)
    async with DefaultDataManager(hosts.connectors, settings=SMALL) as manager:
        manager.register_path(source, "/big.bin")
        await manager.transfer_data(source, "/big.bin", [ranged, appending], "/copy.bin")
    offsets = [offset for _, offset in hosts.connectors["append"].write_offsets]
    assert offsets == sorted(offsets) and offsets[0] == 0 and len(offsets) == 16
    assert await read(hosts, "append", "/copy.bin") == data
    assert await read(hosts, "ranged", "/copy.bin") == data


async def test_a_full_pool_stops_the_reader() -> None:
    pool = BlockPool(count=2, size=4096)
    first, second = await pool.acquire(), await pool.acquire()
    assert first.state is BlockState.WRITABLE
    waiting = asyncio.create_task(pool.acquire())
    await asyncio.sleep(0.01)
    assert not waiting.done(), "a third block was handed out"
    pool.release(first)
    third = await asyncio.wait_for(waiting, 1)
    assert third is first and first.state is BlockState.WRITABLE
    pool.release(second)
    pool.release(third)
    assert (pool.peak_in_use, pool.in_use) == (2, 0)


async def test_a_reserved_place_counts_against_the_pool_bound() -> None:
    pool = BlockPool(count=2, size=4096)
    await pool.reserve()
    block = await pool.acquire()
    assert pool.in_use == 2
    waiting = asyncio.create_task(pool.reserve())
    await asyncio.sleep(0.01)
    assert not waiting.done(), "a third place was handed out"
    pool.unreserve()
    await asyncio.wait_for(waiting, 1)
    pool.unreserve()
    pool.release(block)
    assert (pool.peak_in_use, pool.in_use) == (2, 0)


async def test_back_pressure_holds_reads_while_a_destination_stalls(hosts: Hosts) -> None:
    source = hosts.add("src")
    await put_file(hosts, "src", "/big.bin")
    stalled = hosts.add("stalled", stall_writes=True)
    async with DefaultDataManager(hosts.connectors, settings=SMALL) as manager:
        manager.register_path(source, "/big.bin")
        copy = asyncio.create_task(manager.transfer_data(source, "/big.bin", [stalled], "/c"))
        await asyncio.wait_for(hosts.connectors["stalled"].write_started.wait(), 5)
        await asyncio.sleep(0.2)
        read_so_far = hosts.connectors["src"].bytes_read
        assert read_so_far <= SMALL.memory_bound, "the reader did not wait for free blocks"
        copy.cancel()
        with pytest.raises(asyncio.CancelledError):
            await copy


# -- states ----------------------------------------------------------------------------------


def test_state_manager_counts_in_constant_time() -> None:
    states: StateManager[str, FileState] = StateManager(FileState)
    assert states.all_in(FileState.VALID)  # vacuously
    for name in "abc":
        states[name] = FileState.READY
    states["a"] = FileState.TRANSFERRING
    assert states.count(FileState.READY) == 2 and states.count(FileState.TRANSFERRING) == 1
    assert not states.all_in(FileState.READY)
    assert states.all_in(FileState.READY, FileState.TRANSFERRING)
    for name in "abc":
        states[name] = FileState.VALID
    assert states.all_in(FileState.VALID) and states.counts()[FileState.READY] == 0
    assert len(states) == 3 and states["b"] is FileState.VALID


# -- integrity and retries ------------------------------------------------------------------


async def test_a_corrupted_block_is_caught_retried_and_never_registered_corrupt(
    hosts: Hosts,
) -> None:
    source = hosts.add("src")
    data = await put_file(hosts, "src", "/big.bin")
    target = hosts.add("dst", corrupt_write_numbers=frozenset({3}))
    async with DefaultDataManager(hosts.connectors, settings=SMALL) as manager:
        manager.register_path(source, "/big.bin")
        await manager.transfer_data(source, "/big.bin", [target], "/copy.bin")
        assert manager.statistics.errors["ChecksumMismatchError"] == 1
        assert manager.statistics.retries == 1
    assert await read(hosts, "dst", "/copy.bin") == data
    assert hosts.connectors["src"].bytes_read == 2 * len(data)  # read again for the retry


async def test_a_small_file_is_verified_too(hosts: Hosts) -> None:
    source = hosts.add("src")
    data = await put_file(hosts, "src", "/small.bin", 1000)
    target = hosts.add("dst", corrupt_write_numbers=frozenset({1}))
    async with DefaultDataManager(hosts.connectors, settings=SMALL) as manager:
        manager.register_path(source, "/small.bin")
        await manager.transfer_data(source, "/small.bin", [target], "/copy.bin")
        assert manager.statistics.errors["ChecksumMismatchError"] == 1
    assert await read(hosts, "dst", "/copy.bin") == data


async def test_corruption_that_persists_fails_after_the_retries(hosts: Hosts) -> None:
    source = hosts.add("src")
    await put_file(hosts, "src", "/big.bin")
    good = hosts.add("good")
    bad = hosts.add("bad", corrupt_write_numbers=frozenset(range(1, 1000)))
    async with DefaultDataManager(hosts.connectors, settings=SMALL) as manager:
        manager.register_path(source, "/big.bin")
        with pytest.raises(TransferError) as caught:
            await manager.transfer_data(source, "/big.bin", [good, bad], "/copy.bin")
        [failure] = caught.value.failures
        assert failure.location == bad and isinstance(failure.cause, ChecksumMismatchError)
        assert manager.statistics.errors["ChecksumMismatchError"] == SMALL.max_retries + 1
        assert {r.deployment for r in manager.get_data_locations("/copy.bin")} == {"good", "src"}
    assert await listing(hosts, "bad", "/") == []


async def test_transient_write_errors_are_retried_in_place(hosts: Hosts) -> None:
    source = hosts.add("src")
    data = await put_file(hosts, "src", "/big.bin")
    target = hosts.add("dst", transient_write_numbers=frozenset({2, 3, 7}))
    async with DefaultDataManager(hosts.connectors, settings=SMALL) as manager:
        manager.register_path(source, "/big.bin")
        await manager.transfer_data(source, "/big.bin", [target], "/copy.bin")
        assert manager.statistics.errors["ConnectorError"] == 3
    assert await read(hosts, "dst", "/copy.bin") == data
    assert hosts.connectors["src"].bytes_read == len(data), "an in-place retry re-read the source"


async def test_an_append_only_destination_retries_the_whole_file(hosts: Hosts) -> None:
    source = hosts.add("src")
    data = await put_file(hosts, "src", "/big.bin")
    target = hosts.add("dst", SequentialWrappingConnector, transient_write_numbers=frozenset({5}))
    async with DefaultDataManager(hosts.connectors, settings=SMALL) as manager:
        manager.register_path(source, "/big.bin")
        await manager.transfer_data(source, "/big.bin", [target], "/copy.bin")
    assert await read(hosts, "dst", "/copy.bin") == data
    assert hosts.connectors["src"].bytes_read == 2 * len(data)


async def test_permanent_errors_are_not_retried(hosts: Hosts) -> None:
    source = hosts.add("src")
    await put_file(hosts, "src", "/big.bin")
    target = hosts.add("dst", fail_write_number=2)
    async with DefaultDataManager(hosts.connectors, settings=SMALL) as manager:
        manager.register_path(source, "/big.bin")
        with pytest.raises(TransferError) as caught:
            await manager.transfer_data(source, "/big.bin", [target], "/copy.bin")
        assert isinstance(caught.value.failures[0].cause, StorageFullError)
        assert manager.statistics.retries == 0


async def test_a_destination_that_disappears_fails_alone_with_every_file_listed(
    hosts: Hosts,
) -> None:
    source = hosts.add("src")
    for name in ("a", "b", "c"):
        await put_file(hosts, "src", f"/tree/{name}", 200_000)
    good = hosts.add("good")
    gone = hosts.add("gone", disappear_after_writes=2)
    settings = SMALL.replace(max_retries=2)
    started = time.monotonic()
    async with DefaultDataManager(hosts.connectors, settings=settings) as manager:
        manager.register_path(source, "/tree")
        with pytest.raises(TransferError, match="connection lost") as caught:
            await manager.transfer_data(source, "/tree", [good, gone], "/copy")
        assert [f.location for f in caught.value.failures] == [gone]
        assert manager.get_data_locations("/copy", deployment="gone") == []
    assert time.monotonic() - started < 10, "retries did not give up"
    assert await listing(hosts, "good", "/copy") == ["a", "b", "c"]
    assert await listing(hosts, "gone", "/") == []


# -- cancellation -----------------------------------------------------------------------------


async def test_cancellation_stops_within_a_second_and_leaves_no_temporaries(
    hosts: Hosts,
) -> None:
    source = hosts.add("src")
    await put_file(hosts, "src", "/big.bin")
    stalled = hosts.add("stalled", stall_writes=True)
    await asyncio.to_thread(hosts.path("stalled", "/keep").mkdir)
    snapshots: list[TransferProgress] = []
    async with DefaultDataManager(
        hosts.connectors, settings=SMALL, listeners=[snapshots.append]
    ) as manager:
        manager.register_path(source, "/big.bin")
        copy = asyncio.create_task(
            manager.transfer_data(source, "/big.bin", [stalled], "/keep/copy.bin")
        )
        await asyncio.wait_for(hosts.connectors["stalled"].write_started.wait(), 5)
        started = time.monotonic()
        copy.cancel()
        with pytest.raises(asyncio.CancelledError):
            await copy
        assert time.monotonic() - started < 1
        assert manager.get_data_locations("/keep/copy.bin", deployment="stalled") == []
    assert await listing(hosts, "stalled", "/keep") == []
    assert snapshots[-1].finished and snapshots[-1].chunk_states[ChunkState.CANCELLED] >= 1


async def test_the_shutdown_event_stops_transfers(hosts: Hosts) -> None:
    source = hosts.add("src")
    await put_file(hosts, "src", "/big.bin")
    stalled = hosts.add("stalled", stall_writes=True)
    shutdown = asyncio.Event()
    async with DefaultDataManager(hosts.connectors, settings=SMALL, shutdown=shutdown) as dm:
        dm.register_path(source, "/big.bin")
        copy = asyncio.create_task(dm.transfer_data(source, "/big.bin", [stalled], "/copy.bin"))
        await asyncio.wait_for(hosts.connectors["stalled"].write_started.wait(), 5)
        started = time.monotonic()
        shutdown.set()
        with pytest.raises(TransferCancelledError):
            await copy
        assert time.monotonic() - started < 1
        assert dm.get_data_locations("/copy.bin", deployment="stalled") == []
    assert await listing(hosts, "stalled", "/") == []


# -- progress and statistics --------------------------------------------------------------------


async def test_progress_per_destination_and_statistics_per_location(hosts: Hosts) -> None:
    source = hosts.add("src")
    for name in ("a", "b"):
        await put_file(hosts, "src", f"/tree/{name}")
    first, second = hosts.add("one"), hosts.add("two")
    snapshots: list[TransferProgress] = []
    async with DefaultDataManager(
        hosts.connectors, settings=SMALL, listeners=[snapshots.append]
    ) as manager:
        manager.register_path(source, "/tree")
        await manager.transfer_data(source, "/tree", [first, second], "/copy")
        statistics = manager.statistics
        assert statistics.of(source).bytes_read == 2 * SIZE
        for location in (first, second):
            assert statistics.of(location).bytes_written == 2 * SIZE
            assert statistics.of(location).write_rate > 0
        assert statistics.of(source).read_rate > 0
    assert snapshots[0].bytes_done == 0 and not snapshots[0].finished
    last = snapshots[-1]
    assert last.finished and (last.files_total, last.bytes_total) == (2, 2 * SIZE)
    assert [(d.location, d.files_done, d.bytes_done) for d in last.destinations] == [
        (first, 2, 2 * SIZE),
        (second, 2, 2 * SIZE),
    ]
    assert last.files_done == 2 and last.bytes_done == 2 * SIZE and last.rate > 0
    assert last.file_states[FileState.VALID] == 4  # 2 files x 2 destinations
    chunks_per_file = -(-SIZE // SMALL.chunk_size)
    assert last.chunk_states[ChunkState.FINISHED] == 2 * 2 * chunks_per_file
    assert sum(last.chunk_states.values()) == last.chunk_states[ChunkState.FINISHED]
    done = [s.bytes_done for s in snapshots]
    assert done == sorted(done), "progress went backwards without a retry"


async def test_progress_reports_a_failed_destination(hosts: Hosts) -> None:
    source = hosts.add("src")
    await put_file(hosts, "src", "/big.bin")
    good, bad = hosts.add("good"), hosts.add("bad", fail_write_number=1)
    snapshots: list[TransferProgress] = []
    async with DefaultDataManager(
        hosts.connectors, settings=SMALL, listeners=[snapshots.append]
    ) as manager:
        manager.register_path(source, "/big.bin")
        with pytest.raises(TransferError):
            await manager.transfer_data(source, "/big.bin", [good, bad], "/copy.bin")
    last = snapshots[-1]
    by_location = {d.location: d for d in last.destinations}
    assert by_location[bad].files_failed == 1 and by_location[bad].bytes_done == 0
    assert by_location[good].files_done == 1
    assert last.files_done == 1  # the healthy destinations' view
    assert last.file_states[FileState.FAILED] == 1 and last.file_states[FileState.VALID] == 1
    assert last.chunk_states[ChunkState.ERRORED] == 1


def test_settings_state_the_memory_bound() -> None:
    settings = TransferSettings()
    assert settings.memory_bound == 64 * 1024 * 1024
    assert settings.chunk_size == 64 * 1024 * 1024
    assert [settings.retry_wait(n) for n in (1, 2, 3)] == [0.1, 0.2, 0.4]
    assert TransferSettings(retry_delay=5).retry_wait(10) == 10.0


# -- batches of small files ----------------------------------------------------------------------


async def test_small_files_move_in_batches_and_a_bad_one_is_retried_alone(
    hosts: Hosts,
) -> None:
    source = hosts.add("src")
    files = {f"/tree/d{i % 3}/f{i:03d}": os.urandom(i * 7) for i in range(300)}
    for path, data in files.items():
        target = hosts.path("src", path)
        await asyncio.to_thread(target.parent.mkdir, parents=True, exist_ok=True)
        await asyncio.to_thread(target.write_bytes, data)
    good, flaky = hosts.add("good"), hosts.add("flaky", corrupt_write_numbers=frozenset({10}))
    settings = SMALL.replace(max_batch_files=64)
    async with DefaultDataManager(hosts.connectors, settings=settings) as manager:
        manager.register_path(source, "/tree")
        await manager.transfer_data(source, "/tree", [good, flaky], "/copy")
        assert manager.statistics.errors == {"ChecksumMismatchError": 1}
    extra = hosts.connectors["src"].bytes_read - sum(map(len, files.values()))
    assert extra in {len(data) for data in files.values()}, "more than the bad file was re-read"
    for host in ("good", "flaky"):
        for path, data in files.items():
            assert await read(hosts, host, path.replace("/tree", "/copy")) == data


class _ReadsAhead(WrappingConnector):
    """A source that counts the batches asked of it: from the second on, ``next_read``
    is set."""

    def __init__(self, root: str, next_read: asyncio.Event) -> None:
        super().__init__(root)
        self.next_read = next_read
        self.batch_reads = 0

    async def read_files(
        self, location: ExecutionLocation, paths: Sequence[str]
    ) -> list[bytes | ConnectorError]:
        self.batch_reads += 1
        if self.batch_reads > 1:
            self.next_read.set()
        return await super().read_files(location, paths)


class _WritesAfter(WrappingConnector):
    """A destination whose batches are written only once ``ready`` is set."""

    def __init__(self, root: str, ready: asyncio.Event) -> None:
        super().__init__(root)
        self.ready = ready

    async def write_files(
        self, location: ExecutionLocation, items: Sequence[WriteItem]
    ) -> list[ConnectorError | None]:
        await self.ready.wait()
        return await super().write_files(location, items)


async def test_the_next_batch_is_read_while_one_is_written(hosts: Hosts) -> None:
    """One worker: its second read must not wait for the first batch's write."""
    next_read = asyncio.Event()
    source = hosts.add("src", _ReadsAhead, next_read=next_read)
    files = {
        f"/tree/f{i:02d}": await put_file(hosts, "src", f"/tree/f{i:02d}", 100) for i in range(12)
    }
    target = hosts.add("dst", _WritesAfter, ready=next_read)
    settings = SMALL.replace(max_batch_files=4, max_concurrent_files=1)
    async with DefaultDataManager(hosts.connectors, settings=settings) as manager:
        manager.register_path(source, "/tree")
        copy = manager.transfer_data(source, "/tree", [target], "/copy")
        await asyncio.wait_for(copy, 5)
    reads = hosts.connectors["src"]
    assert isinstance(reads, _ReadsAhead) and reads.batch_reads == 3
    for path, data in files.items():
        assert await read(hosts, "dst", path.replace("/tree", "/copy")) == data


class _InFlight:
    """Counts the calls in its block, and the most at once."""

    def __init__(self) -> None:
        self.now = self.most = 0

    async def __aenter__(self) -> None:
        self.now += 1
        self.most = max(self.most, self.now)

    async def __aexit__(self, *exc: object) -> None:
        self.now -= 1


class _BatchesAtOnce(WrappingConnector):
    """A location that says how many batches are worth reading or writing at once (None:
    no say), and counts the most it was asked to read, and to write, at once (each lasts
    a moment)."""

    def __init__(self, root: str, streams: int | None) -> None:
        super().__init__(root)
        self.streams = streams
        self.reading = _InFlight()
        self.writing = _InFlight()

    def batch_streams(self, location: ExecutionLocation) -> int | None:
        return self.streams

    async def read_files(
        self, location: ExecutionLocation, paths: Sequence[str]
    ) -> list[bytes | ConnectorError]:
        async with self.reading:
            await asyncio.sleep(0.01)
            return await super().read_files(location, paths)

    async def write_files(
        self, location: ExecutionLocation, items: Sequence[WriteItem]
    ) -> list[ConnectorError | None]:
        async with self.writing:
            await asyncio.sleep(0.05)
            return await super().write_files(location, items)


@pytest.mark.parametrize(("streams", "most"), [(None, 4), (2, 2), (1, 1)])
async def test_batches_read_at_once_follow_the_source_connector(
    hosts: Hosts, streams: int | None, most: int
) -> None:
    """Four workers read four batches at once, unless the source's ``batch_streams``
    says fewer are worth it."""
    source = hosts.add("src", _BatchesAtOnce, streams=streams)
    files = {
        f"/tree/f{i:02d}": await put_file(hosts, "src", f"/tree/f{i:02d}", 100) for i in range(16)
    }
    target = hosts.add("dst")
    settings = SMALL.replace(max_batch_files=2, max_concurrent_files=4)
    async with DefaultDataManager(hosts.connectors, settings=settings) as manager:
        manager.register_path(source, "/tree")
        await manager.transfer_data(source, "/tree", [target], "/copy")
    reads = hosts.connectors["src"]
    assert isinstance(reads, _BatchesAtOnce) and reads.reading.most == most
    for path, data in files.items():
        assert await read(hosts, "dst", path.replace("/tree", "/copy")) == data


@pytest.mark.parametrize("streams", [None, 2, 1])
async def test_batches_written_at_once_follow_the_destination_connector(
    hosts: Hosts, streams: int | None
) -> None:
    """Batches read ahead are written side by side, as many at once at a destination as
    its ``batch_streams`` says are worth it (no bound without a say): a host whose disk
    takes the batches should not be given more than it can unpack."""
    source = hosts.add("src")
    files = {
        f"/tree/f{i:02d}": await put_file(hosts, "src", f"/tree/f{i:02d}", 100) for i in range(16)
    }
    target = hosts.add("dst", _BatchesAtOnce, streams=streams)
    settings = SMALL.replace(max_batch_files=2, max_concurrent_files=4, block_count=16)
    async with DefaultDataManager(hosts.connectors, settings=settings) as manager:
        manager.register_path(source, "/tree")
        await manager.transfer_data(source, "/tree", [target], "/copy")
    writes = hosts.connectors["dst"]
    assert isinstance(writes, _BatchesAtOnce)
    assert writes.writing.most == streams if streams else writes.writing.most > 2
    for path, data in files.items():
        assert await read(hosts, "dst", path.replace("/tree", "/copy")) == data


@pytest.mark.parametrize(
    ("count", "size", "expected"),
    [
        (10_000, 4096, [1000] * 10),  # as large as allowed when every worker has one
        (2_000, 4096, [250] * 8),  # smaller, so that all 8 workers move one
        (300, 4096, [150] * 2),  # never under a quarter of the largest batch
        (10, 4096, [10]),
        (100, 1 << 20, [4] * 25),  # one block of data at most
    ],
)
def test_small_files_are_batched_as_large_as_the_workers_allow(
    count: int, size: int, expected: list[int]
) -> None:
    stat = FileStat(FileKind.FILE, size, 0o644, 0)
    files = [SmallFile(f"f{index}", f"/src/f{index}", stat) for index in range(count)]
    groups = list(batches(files, max_files=1024, max_bytes=4 << 20, workers=8))
    assert [len(group) for group in groups] == expected
    assert [file for group in groups for file in group] == files


async def test_a_tree_appears_whole_at_the_end(hosts: Hosts) -> None:
    """A new tree is written under a hidden staging name and renamed when complete."""
    source = hosts.add("src")
    for name in ("a", "b"):
        await put_file(hosts, "src", f"/tree/{name}")
    stalled = hosts.add("stalled", stall_writes=True)
    async with DefaultDataManager(hosts.connectors, settings=SMALL) as manager:
        manager.register_path(source, "/tree")
        copy = asyncio.create_task(manager.transfer_data(source, "/tree", [stalled], "/copy"))
        await asyncio.wait_for(hosts.connectors["stalled"].write_started.wait(), 5)
        [staging] = await listing(hosts, "stalled", "/")
        assert staging.startswith(".copy.") and staging.endswith(".sfd-part")
        copy.cancel()
        with pytest.raises(asyncio.CancelledError):
            await copy
    assert await listing(hosts, "stalled", "/") == []
    again = Hosts(hosts.base.parent / "again")  # the first manager closed its connectors
    source, target = again.add("src"), again.add("dst")
    await asyncio.to_thread(hosts.path("src", "/tree").rename, again.path("src", "/tree"))
    async with DefaultDataManager(again.connectors, settings=SMALL) as manager:
        manager.register_path(source, "/tree")
        await manager.transfer_data(source, "/tree", [target], "/copy")
    assert await listing(again, "dst", "/") == ["copy"]
    assert await listing(again, "dst", "/copy") == ["a", "b"]


async def test_a_file_that_grows_during_the_transfer_is_not_published(hosts: Hosts) -> None:
    source = hosts.add("src")
    await put_file(hosts, "src", "/big.bin")
    target = hosts.add("dst", stall_writes=True)
    settings = SMALL.replace(max_retries=0)
    async with DefaultDataManager(hosts.connectors, settings=settings) as manager:
        manager.register_path(source, "/big.bin")
        copy = asyncio.create_task(manager.transfer_data(source, "/big.bin", [target], "/c.bin"))
        await asyncio.wait_for(hosts.connectors["dst"].write_started.wait(), 5)
        with await asyncio.to_thread(hosts.path("src", "/big.bin").open, "ab") as grown:
            await asyncio.to_thread(grown.write, b"more")
        hosts.connectors["dst"].release.set()
        with pytest.raises(TransferError, match="changed during the transfer"):
            await copy
    assert await listing(hosts, "dst", "/") == []


async def test_cancelled_transfers_give_every_block_back(hosts: Hosts) -> None:
    """The pool outlives a transfer: blocks queued when it was cancelled must return."""
    source = hosts.add("src")
    data = await put_file(hosts, "src", "/big.bin")
    # An append-only destination has one writer, so read blocks wait in its queue.
    stalled = hosts.add("stalled", SequentialWrappingConnector, stall_writes=True)
    healthy = hosts.add("healthy")
    settings = SMALL.replace(block_count=3)
    async with DefaultDataManager(hosts.connectors, settings=settings) as manager:
        manager.register_path(source, "/big.bin")
        for attempt in range(3):
            copy = asyncio.create_task(
                manager.transfer_data(source, "/big.bin", [stalled], f"/c{attempt}")
            )
            await asyncio.wait_for(hosts.connectors["stalled"].write_started.wait(), 5)
            await asyncio.sleep(0.05)  # let the reader fill the pool
            copy.cancel()
            with pytest.raises(asyncio.CancelledError):
                await copy
            assert manager.statistics.buffer_bytes_in_use == 0
        await asyncio.wait_for(
            manager.transfer_data(source, "/big.bin", [healthy], "/copy.bin"), 10
        )
    assert await read(hosts, "healthy", "/copy.bin") == data
