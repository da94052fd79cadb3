"""Files handed over as ranges of a local file: a source whose reader writes the local
destination's file itself (the SSH connector's ``ssh`` does), faked on this machine."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from streamflow_data import (
    Connector,
    DefaultDataManager,
    ExecutionLocation,
    LocalConnector,
    StorageFullError,
    TransferError,
    TransferProgress,
)
from streamflow_data.transfer import localranges
from streamflow_data.transfer.state import ChunkState
from tests.helpers import SIZE, SMALL, Hosts, KiB, LastSnapshot, wait_for_progress
from tests.wrappers import (
    LocalFileReadingConnector,
    LocalFileWritingConnector,
    ResumableConnector,
    WrappingConnector,
)


async def put_file(hosts: Hosts, size: int = SIZE) -> bytes:
    data = os.urandom(size)
    await asyncio.to_thread(hosts.path("src", "/big.bin").write_bytes, data)
    return data


def source_of(hosts: Hosts) -> LocalFileWritingConnector:
    connector = hosts.connectors["src"]
    assert isinstance(connector, LocalFileWritingConnector)
    return connector


@pytest.mark.parametrize("range_size", [localranges.RANGE_SIZE, 256 * KiB])
@pytest.mark.parametrize("checksum", ["crc32c", "sha256"])
async def test_the_source_fills_the_local_file_itself_range_by_range(
    hosts: Hosts, monkeypatch: pytest.MonkeyPatch, range_size: int, checksum: str
) -> None:
    """One range for the file, or one per chunk, four at once: no byte of the file is read
    or written by the engine, and progress counts each once."""
    monkeypatch.setattr(localranges, "RANGE_SIZE", range_size)
    source = hosts.add("src", LocalFileWritingConnector)
    target = hosts.add("dst")
    data = await put_file(hosts)
    seen = LastSnapshot()
    settings = SMALL.replace(checksum=checksum)
    async with DefaultDataManager(hosts.connectors, settings=settings, listeners=[seen]) as manager:
        manager.register_path(source, "/big.bin")
        await manager.transfer_data(source, "/big.bin", [target], "/copy.bin")
        assert manager.statistics.of(source).bytes_read == SIZE * (2 if checksum == "sha256" else 1)
        assert not manager.statistics.errors
    assert seen.last is not None and seen.last.bytes_done == SIZE
    assert seen.last.chunk_states[ChunkState.FINISHED] == -(-SIZE // SMALL.chunk_size)
    assert await asyncio.to_thread(hosts.path("dst", "/copy.bin").read_bytes) == data
    assert source_of(hosts).local_bytes == SIZE
    assert source_of(hosts).local_ranges == (1 if range_size > SIZE else 4)
    assert hosts.connectors["dst"].writes == 0  # nothing went through the writer


async def test_a_failed_range_goes_on_through_this_process_from_where_it_stopped(
    hosts: Hosts,
) -> None:
    source = hosts.add("src", LocalFileWritingConnector, fail_at=300_000)
    target = hosts.add("dst")
    data = await put_file(hosts)
    seen = LastSnapshot()
    async with DefaultDataManager(hosts.connectors, settings=SMALL, listeners=[seen]) as manager:
        manager.register_path(source, "/big.bin")
        await manager.transfer_data(source, "/big.bin", [target], "/copy.bin")
        assert manager.statistics.errors == {"ConnectorError": 1}
    assert seen.last is not None and seen.last.bytes_done == SIZE  # those before it once
    assert await asyncio.to_thread(hosts.path("dst", "/copy.bin").read_bytes) == data
    assert source_of(hosts).local_bytes == 300_000
    offsets = [offset for _, offset in hosts.connectors["dst"].write_offsets]
    assert offsets[0] == 300_000 and len(offsets) == -(-(SIZE - 300_000) // (64 * KiB))


async def test_a_local_failure_is_reported_as_the_local_connector_reports_it(
    hosts: Hosts,
) -> None:
    """The program writing the local file fails (the disk is full): moving the rest here
    tells why, and the partial file is removed."""
    source = hosts.add("src", LocalFileWritingConnector, fail_at=300_000)
    target = hosts.add("dst", fail_write_number=1)
    await put_file(hosts)
    async with DefaultDataManager(hosts.connectors, settings=SMALL) as manager:
        manager.register_path(source, "/big.bin")
        with pytest.raises(TransferError) as caught:
            await manager.transfer_data(source, "/big.bin", [target], "/copy.bin")
        assert isinstance(caught.value.failures[0].cause, StorageFullError)
        assert not manager.get_data_locations("/copy.bin", deployment=target.deployment)
    assert await asyncio.to_thread(os.listdir, hosts.path("dst", "/")) == []


async def test_a_source_that_ends_early_is_not_published(hosts: Hosts) -> None:
    source = hosts.add("src", LocalFileWritingConnector, short_by=10)
    target = hosts.add("dst")
    await put_file(hosts)
    async with DefaultDataManager(hosts.connectors, settings=SMALL.replace(max_retries=0)) as m:
        m.register_path(source, "/big.bin")
        with pytest.raises(TransferError, match="changed during the transfer"):
            await m.transfer_data(source, "/big.bin", [target], "/copy.bin")
    assert await asyncio.to_thread(os.listdir, hosts.path("dst", "/")) == []


async def test_several_destinations_share_blocks_instead(hosts: Hosts) -> None:
    """The file is read once for all: ranges are for a single destination."""
    source = hosts.add("src", LocalFileWritingConnector)
    targets = [hosts.add("dst"), hosts.add("dst2")]
    data = await put_file(hosts)
    async with DefaultDataManager(hosts.connectors, settings=SMALL) as manager:
        manager.register_path(source, "/big.bin")
        await manager.transfer_data(source, "/big.bin", targets, "/copy.bin")
    assert source_of(hosts).local_bytes == 0
    assert isinstance(hosts.connectors["dst2"], WrappingConnector)
    for name in ("dst", "dst2"):
        assert await asyncio.to_thread(hosts.path(name, "/copy.bin").read_bytes) == data


# -- resuming ---------------------------------------------------------------------------------


async def _resumed_copy(
    connectors: dict[str, Connector],
    source: ExecutionLocation,
    src: str,
    target: ExecutionLocation,
    catalog: str,
    interrupt: Callable[[], Awaitable[None]],
) -> TransferProgress:
    """Copy ``src``, cancel the copy once ``interrupt`` returns, and run it again with
    fresh connectors of the same kinds; the second run's last snapshot."""

    async def copy(connectors: dict[str, Connector]) -> TransferProgress:
        seen = LastSnapshot()
        async with DefaultDataManager(
            connectors, settings=SMALL, catalog=catalog, listeners=[seen]
        ) as manager:
            manager.register_path(source, src)
            await manager.transfer_data(source, src, [target], "/copy.bin")
        assert seen.last is not None
        return seen.last

    first = asyncio.create_task(copy(connectors))
    await interrupt()
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    return await copy({name: _again(connector) for name, connector in connectors.items()})


async def _stalled(program: WrappingConnector, catalog: str, least: int) -> None:
    """Until the fake program has stalled and the journal records ``least`` bytes."""
    assert isinstance(program, LocalFileReadingConnector | LocalFileWritingConnector)
    await asyncio.wait_for(program.stalled.wait(), 5)
    await wait_for_progress(catalog, least)


def _again(connector: Connector) -> Connector:
    """A new connector like ``connector``, without its faults (a manager closes its own)."""
    if isinstance(connector, WrappingConnector):
        return type(connector)(connector.root)
    return type(connector)()


async def test_an_interrupted_download_continues_from_the_chunks_its_file_holds(
    hosts: Hosts, tmp_path: Path
) -> None:
    """The reader stalls past two chunks and a bit; the next run keeps those two, whose
    CRC32C was read back from the local file as they filled."""
    catalog = str(tmp_path / "catalog.sqlite")
    source = hosts.add("src", LocalFileWritingConnector, stall_at=600_000)
    target = hosts.add("dst", ResumableConnector)
    data = await put_file(hosts)
    again = await _resumed_copy(
        dict(hosts.connectors),
        source,
        "/big.bin",
        target,
        catalog,
        lambda: _stalled(hosts.connectors["src"], catalog, 2 * SMALL.chunk_size),
    )
    done = again.destinations[0]
    assert done.bytes_skipped == 2 * SMALL.chunk_size
    assert done.bytes_done == SIZE and again.bytes_moved == SIZE - 2 * SMALL.chunk_size
    assert await asyncio.to_thread(hosts.path("dst", "/copy.bin").read_bytes) == data


async def test_an_interrupted_upload_continues_from_the_chunks_the_program_read_past(
    hosts: Hosts, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The writer's program stalls after 655,360 bytes (ten pieces): with 200,000 taken
    to be in flight, only the first chunk (to 262,144) is held, and the next run keeps it."""
    monkeypatch.setattr(localranges, "IN_FLIGHT", 200_000)
    catalog = str(tmp_path / "catalog.sqlite")
    blob = tmp_path / "blob"
    data = os.urandom(SIZE)
    await asyncio.to_thread(blob.write_bytes, data)
    target = hosts.add("dst", LocalFileReadingConnector, stall_at=600_000)
    local = ExecutionLocation("local", "localhost", local=True)
    connectors: dict[str, Connector] = {"local": LocalConnector(), **hosts.connectors}
    again = await _resumed_copy(
        connectors,
        local,
        str(blob),
        target,
        catalog,
        lambda: _stalled(hosts.connectors["dst"], catalog, SMALL.chunk_size),
    )
    done = again.destinations[0]
    assert done.bytes_skipped == SMALL.chunk_size
    assert await asyncio.to_thread(hosts.path("dst", "/copy.bin").read_bytes) == data
