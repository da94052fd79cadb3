"""Files of this machine handed to the host's process in ranges (``put_file`` and
``get_file`` of the shell connector), over local subprocesses whose commands a test may
cut short, stall or fail."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import re
from collections.abc import AsyncIterator, Awaitable, Callable
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
    Verification,
)
from streamflow_data.shell import Stream, handover
from streamflow_data.transfer.state import ChunkState
from tests.helpers import (
    SIZE,
    SMALL,
    Hosts,
    KiB,
    LastSnapshot,
    journaled_bytes,
    wait_for_progress,
)
from tests.shell.subprocess_transport import SubprocessConnector, SubprocessTransport
from tests.wrappers import ResumableConnector

HERE = ExecutionLocation("local", "localhost", local=True)
_READ = re.compile(r"^dd if=.* skip=(\d+) count=(\d+)$")
"""A range the host reads for the local file (see ``handover``): its offset and size."""


class FaultyTransport(SubprocessTransport):
    """Ranges handed to the processes, counted, and cut short (``short_by`` bytes fewer
    per range read), failed once past ``fail_at`` or stalled for good past ``stall_at``
    (offsets of the file)."""

    fail_at: int | None = None
    stall_at: int | None = None
    short_by = 0

    def __init__(self, location: ExecutionLocation) -> None:
        super().__init__(location)
        self.handed = 0
        self.stalled = asyncio.Event()

    def _faulty(self, command: str, reading: bool) -> str:
        """``command`` with the fault this range meets, if any."""
        found = _READ.match(command) if reading else None
        start, size = (int(found.group(1)), int(found.group(2))) if found else (0, 0)
        if reading and self.short_by:
            return command.replace(f"count={size}", f"count={size - self.short_by}")
        if reading and self.fail_at is not None and start <= self.fail_at < start + size:
            keep, self.fail_at = self.fail_at - start, None
            return f"( {command} ) | head -c {keep}; exit 1"
        if self.stall_at is not None:
            self.stalled.set()
            if reading:
                return f"( {command} ) | head -c {self.stall_at - start}; exec sleep 60"
            take = f"dd bs={self.stall_at} count=1 iflag=fullblock status=none"
            return f"{{ {take}; exec sleep 60; }} | {{ {command}; }}"
        return command

    @contextlib.asynccontextmanager
    async def stream(
        self, command: str, path: str, *, stdin: int | None = None, stdout: int | None = None
    ) -> AsyncIterator[Stream]:
        if stdin is not None or stdout is not None:
            self.handed += 1
            command = self._faulty(command, reading=stdout is not None)
        async with super().stream(command, path, stdin=stdin, stdout=stdout) as stream:
            yield stream


class FaultyConnector(SubprocessConnector):
    def __init__(self, **faults: int) -> None:
        super().__init__()
        self.faults = faults

    def transport(self, location: ExecutionLocation) -> FaultyTransport:
        transport = self._transports.get(location)
        if transport is None:
            transport = FaultyTransport(location)
            for name, value in self.faults.items():
                setattr(transport, name, value)
            self._transports[location] = transport
        assert isinstance(transport, FaultyTransport)
        return transport


HOST = ExecutionLocation("host", "here")


async def _remote_file(tmp_path: Path, size: int = SIZE) -> tuple[str, bytes]:
    data = os.urandom(size)
    path = tmp_path / "remote.bin"
    await asyncio.to_thread(path.write_bytes, data)
    return str(path), data


@pytest.mark.parametrize("range_size", [handover.RANGE_SIZE, 256 * KiB])
@pytest.mark.parametrize("checksum", ["crc32c", "sha256"])
async def test_the_host_fills_the_local_file_itself_range_by_range(
    hosts: Hosts, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, range_size: int, checksum: str
) -> None:
    """One range for the file, or one per chunk: no byte of the file is read or written
    by the engine, and progress counts each once."""
    monkeypatch.setattr(handover, "RANGE_SIZE", range_size)
    source = FaultyConnector()
    target = hosts.add("dst")
    src, data = await _remote_file(tmp_path)
    seen = LastSnapshot()
    settings = SMALL.replace(checksum=checksum)
    connectors: dict[str, Connector] = {"host": source, **hosts.connectors}
    async with DefaultDataManager(connectors, settings=settings, listeners=[seen]) as manager:
        manager.register_path(HOST, src)
        await manager.transfer_data(HOST, src, [target], "/copy.bin")
        assert manager.statistics.of(HOST).bytes_read >= SIZE
        assert not manager.statistics.errors
        handed = source.transport(HOST).handed
    assert seen.last is not None and seen.last.bytes_done == SIZE
    assert seen.last.chunk_states[ChunkState.FINISHED] == -(-SIZE // SMALL.chunk_size)
    assert await asyncio.to_thread(hosts.path("dst", "/copy.bin").read_bytes) == data
    assert handed == (1 if range_size > SIZE else 4)
    assert hosts.connectors["dst"].writes == 0  # nothing went through the writer


async def test_a_failed_range_goes_on_through_this_process_from_where_it_stopped(
    hosts: Hosts, tmp_path: Path
) -> None:
    source = FaultyConnector(fail_at=300_000)
    target = hosts.add("dst")
    src, data = await _remote_file(tmp_path)
    seen = LastSnapshot()
    connectors: dict[str, Connector] = {"host": source, **hosts.connectors}
    async with DefaultDataManager(connectors, settings=SMALL, listeners=[seen]) as manager:
        manager.register_path(HOST, src)
        await manager.transfer_data(HOST, src, [target], "/copy.bin")
        assert manager.statistics.errors == {"ConnectorError": 1}
    assert seen.last is not None and seen.last.bytes_done == SIZE  # those before it once
    assert await asyncio.to_thread(hosts.path("dst", "/copy.bin").read_bytes) == data


async def test_a_local_failure_is_reported_by_its_errno(
    hosts: Hosts, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The range fails, and the local file cannot take the rest (the disk is full): the
    transfer says why, and the partial file is removed."""

    def full(fd: int, data: memoryview, offset: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(handover, "pwrite_all", full)
    source = FaultyConnector(fail_at=300_000)
    target = hosts.add("dst")
    src, _ = await _remote_file(tmp_path)
    connectors: dict[str, Connector] = {"host": source, **hosts.connectors}
    async with DefaultDataManager(connectors, settings=SMALL) as manager:
        manager.register_path(HOST, src)
        with pytest.raises(TransferError) as caught:
            await manager.transfer_data(HOST, src, [target], "/copy.bin")
        assert isinstance(caught.value.failures[0].cause, StorageFullError)
        assert not manager.get_data_locations("/copy.bin", deployment=target.deployment)
    assert await asyncio.to_thread(os.listdir, hosts.path("dst", "/")) == []


async def test_a_source_that_ends_early_is_not_published(hosts: Hosts, tmp_path: Path) -> None:
    source = FaultyConnector(short_by=10)
    target = hosts.add("dst")
    src, _ = await _remote_file(tmp_path)
    connectors: dict[str, Connector] = {"host": source, **hosts.connectors}
    async with DefaultDataManager(connectors, settings=SMALL.replace(max_retries=0)) as m:
        m.register_path(HOST, src)
        with pytest.raises(TransferError, match="changed during the transfer"):
            await m.transfer_data(HOST, src, [target], "/copy.bin")
    assert await asyncio.to_thread(os.listdir, hosts.path("dst", "/")) == []


async def test_several_destinations_share_blocks_instead(hosts: Hosts, tmp_path: Path) -> None:
    """The file is read once for all: ranges are for a single destination."""
    source = FaultyConnector()
    targets = [hosts.add("dst"), hosts.add("dst2")]
    src, data = await _remote_file(tmp_path)
    connectors: dict[str, Connector] = {"host": source, **hosts.connectors}
    async with DefaultDataManager(connectors, settings=SMALL) as manager:
        manager.register_path(HOST, src)
        await manager.transfer_data(HOST, src, targets, "/copy.bin")
        assert source.transport(HOST).handed == 0
    for name in ("dst", "dst2"):
        assert await asyncio.to_thread(hosts.path(name, "/copy.bin").read_bytes) == data


async def test_an_upload_hands_the_local_file_to_the_host_and_checks_its_size(
    tmp_path: Path,
) -> None:
    target = FaultyConnector()
    data = os.urandom(SIZE)
    blob, copy = tmp_path / "blob", tmp_path / "copy.bin"
    await asyncio.to_thread(blob.write_bytes, data)
    seen = LastSnapshot()
    connectors: dict[str, Connector] = {"local": LocalConnector(), "host": target}
    async with DefaultDataManager(connectors, settings=SMALL, listeners=[seen]) as manager:
        manager.register_path(HERE, str(blob))
        await manager.transfer_data(HERE, str(blob), [HOST], str(copy))
        assert manager.statistics.of(HERE).bytes_read == SIZE  # once, for the checksum
        assert target.transport(HOST).handed == 1
    assert await asyncio.to_thread(copy.read_bytes) == data
    assert seen.last is not None
    assert seen.last.destinations[0].verification is Verification.SIZE


async def test_an_upload_reads_for_its_checksum_close_behind_the_host(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The host's process stalls after reading 300,000 bytes; with a lead of 100,000, the
    checksum's reading stops at the chunk that starts past 400,000 (at 524,288), where
    it read the whole file before: what it reads is still cached when the host reads it."""
    monkeypatch.setattr(handover, "CRC_LEAD", 100_000)
    blob, copy = tmp_path / "blob", tmp_path / "copy.bin"
    await asyncio.to_thread(blob.write_bytes, os.urandom(SIZE))
    target = FaultyConnector(stall_at=300_000)
    connectors: dict[str, Connector] = {"local": LocalConnector(), "host": target}
    async with DefaultDataManager(connectors, settings=SMALL) as manager:
        manager.register_path(HERE, str(blob))
        upload = asyncio.create_task(manager.transfer_data(HERE, str(blob), [HOST], str(copy)))
        try:
            await asyncio.wait_for(target.transport(HOST).stalled.wait(), 5)
            await asyncio.sleep(0.5)  # the host's progress polled, the reading let through
            read = manager.statistics.of(HERE).bytes_read
        finally:
            upload.cancel()
            with pytest.raises(asyncio.CancelledError):
                await upload
    assert read == 2 * SMALL.chunk_size


# -- resuming ---------------------------------------------------------------------------------


async def _resumed_copy(
    connectors: dict[str, Connector],
    source: ExecutionLocation,
    src: str,
    target: ExecutionLocation,
    dst: str,
    catalog: str,
    interrupt: Callable[[], Awaitable[None]],
    again: dict[str, Connector],
    between: Callable[[], Awaitable[None]] | None = None,
) -> TransferProgress:
    """Copy ``src``, cancel the copy once ``interrupt`` returns, await ``between``, and
    run it again with the connectors ``again``; the second run's last snapshot."""

    async def copy(connectors: dict[str, Connector]) -> TransferProgress:
        seen = LastSnapshot()
        async with DefaultDataManager(
            connectors, settings=SMALL, catalog=catalog, listeners=[seen]
        ) as manager:
            manager.register_path(source, src)
            await manager.transfer_data(source, src, [target], dst)
        assert seen.last is not None
        return seen.last

    first = asyncio.create_task(copy(connectors))
    await interrupt()
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    if between is not None:
        await between()
    return await copy(again)


async def test_an_interrupted_download_continues_from_the_chunks_its_file_holds(
    hosts: Hosts, tmp_path: Path
) -> None:
    """The host's process stalls past two chunks and a bit; the next run keeps those two,
    whose CRC32C was read back from the local file as they filled."""
    catalog = str(tmp_path / "catalog.sqlite")
    source = FaultyConnector(stall_at=600_000)
    target = hosts.add("dst", ResumableConnector)
    src, data = await _remote_file(tmp_path)

    async def stalled() -> None:
        await asyncio.wait_for(source.transport(HOST).stalled.wait(), 5)
        await wait_for_progress(catalog, 2 * SMALL.chunk_size)

    again = await _resumed_copy(
        {"host": source, **hosts.connectors},
        HOST,
        src,
        target,
        "/copy.bin",
        catalog,
        stalled,
        {"host": SubprocessConnector(), "dst": ResumableConnector(str(hosts.path("dst", "/")))},
    )
    done = again.destinations[0]
    assert done.bytes_skipped == 2 * SMALL.chunk_size
    assert done.bytes_done == SIZE and again.bytes_moved == SIZE - 2 * SMALL.chunk_size
    assert await asyncio.to_thread(hosts.path("dst", "/copy.bin").read_bytes) == data


async def test_an_interrupted_upload_continues_from_the_chunks_the_host_read_past(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The host's process stalls after reading 600,000 bytes: with 200,000 taken to be in
    flight, only the first chunk (to 262,144) is journaled as held, and the next run keeps
    at least that (more where the partial file shows it holds more)."""
    monkeypatch.setattr(handover, "IN_FLIGHT", 200_000)
    catalog = str(tmp_path / "catalog.sqlite")
    blob, copy = tmp_path / "blob", tmp_path / "copy.bin"
    data = os.urandom(SIZE)
    await asyncio.to_thread(blob.write_bytes, data)
    target = FaultyConnector(stall_at=600_000)

    async def stalled() -> None:
        await asyncio.wait_for(target.transport(HOST).stalled.wait(), 5)
        await wait_for_progress(catalog, SMALL.chunk_size)
        await asyncio.sleep(0.3)  # time for a chunk journaled too early to show

    async def journaled_once() -> None:
        assert await journaled_bytes(catalog) == SMALL.chunk_size

    again = await _resumed_copy(
        {"local": LocalConnector(), "host": target},
        HERE,
        str(blob),
        HOST,
        str(copy),
        catalog,
        stalled,
        {"local": LocalConnector(), "host": SubprocessConnector()},
        journaled_once,
    )
    done = again.destinations[0]
    assert done.bytes_skipped >= SMALL.chunk_size
    assert await asyncio.to_thread(copy.read_bytes) == data
