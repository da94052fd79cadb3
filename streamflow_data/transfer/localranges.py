"""Chunks handed as ranges of a local file to a program that reads or writes it itself.

**Upload.** When the source file is on this machine and its one destination's writer reads
local files (:attr:`~streamflow_data.connectors.openfiles.Writer.reads_local_files`: the SSH
writer, whose ``ssh`` reads them), the file goes to that writer as ranges of consecutive
chunks. Its bytes never pass through this process, which would otherwise read, copy and
write every one of them again. A range is read here once meanwhile, for the CRC32C the
writer reports and the commit verifies.

**Download.** When the one destination's writer fills a file of this machine
(:attr:`~streamflow_data.connectors.openfiles.Writer.local_file`) and the source's reader
writes local files (:attr:`~streamflow_data.connectors.openfiles.Reader.writes_local_files`:
the SSH reader, whose ``ssh`` writes them), the reader puts each range into that file
itself. No byte passes through this process, so none is checksummed here: the copy is
checked by the count of bytes each range put in the file and by the statuses of the
programs that moved them (``checksum = "sha256"`` adds the end-to-end comparison). A
range whose direct write fails is moved again, from where it stopped, through this
process, block by block: a failure of the local file (a full disk) is then reported as
the local connector reports it, and a dropped connection is retried as block reads are.

With a journal (a catalog), each chunk a destination holds whole is recorded as it would
be on the block path, with its CRC32C, so that an interrupted transfer continues the file
from its chunks: a download's chunks are read back from the local file for it (the file's
offset says exactly what it holds); an upload's come from the source's checksum, and the
host is taken to hold a chunk once the master has read :data:`IN_FLIGHT` bytes past it
(what its channel window, the sockets and the pipe to ``dd`` can hold) or its range has
ended. A record that says too much fails the continued file's check, which then starts
the file over.

A transfer to several destinations keeps the blocks, so that the file is read once for all.
A range spans up to :data:`RANGE_SIZE` bytes: the SSH connector spends a session (a
process at each end) per range, which measured 30% slower at 64 MiB than at 256 MiB per
session for a 1 GiB upload. When the ranges would go one at a time (the connectors want
one stream per file), the whole file is one range. Progress is reported within a range.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

from streamflow_data.checksum import crc32c_combine, crc32c_of_file
from streamflow_data.connectors.local import LocalConnector
from streamflow_data.connectors.openfiles import Reader, Writer
from streamflow_data.transfer.context import Destination, RunContext, source_changed
from streamflow_data.transfer.state import ChunkState

__all__ = ["RANGE_SIZE", "Direction", "LocalRanges", "direct_destinations"]

RANGE_SIZE = 256 * 1024 * 1024
"""Bytes handed over at once, in whole chunks (one chunk when chunks are larger)."""
IN_FLIGHT = 16 * 1024 * 1024
"""Bytes of an upload taken to be on their way, not yet held by the host, behind how far
the program reading the file has got."""


class Direction(enum.Enum):
    """Which end of the copy is the local file handed over in ranges."""

    LOCAL_SOURCE = "local source"
    """The source: the destination's writer reads it."""
    LOCAL_DESTINATION = "local destination"
    """The destination's file: the source's reader writes it."""


def direct_destinations(
    context: RunContext,
    reader: Reader,
    writers: dict[Destination, Writer],
    ranged: bool,
    continued: set[Destination],
) -> dict[Destination, Direction]:
    """The destination to hand ranges of a local file rather than blocks, if any: the only
    one, ranged, whose writer reads local files, from a local source file; or whose writer
    fills a local file, from a reader that writes local files. Not a writer ``continued``
    from an earlier run's file, whose chunk marks only the block path follows (ranges
    record marks of whole chunks, for such a later run)."""
    if len(writers) != 1 or not ranged:
        return {}
    [(destination, writer)] = writers.items()
    if destination in continued:
        return {}
    if writer.reads_local_files and isinstance(context.source.connector, LocalConnector):
        return {destination: Direction.LOCAL_SOURCE}
    if reader.writes_local_files and writer.local_file is not None:
        return {destination: Direction.LOCAL_DESTINATION}
    return {}


_Progress = Callable[[int], None]
_Move = Callable[[range, _Progress], Awaitable[None]]


class _Position:
    """How far one range has got in the file, for the task that follows it."""

    def __init__(self, at: int) -> None:
        self.at = at
        self._ended = False
        self._moved = asyncio.Event()

    def advance(self, moved: int) -> None:
        self.at += moved
        self._moved.set()

    def end(self) -> None:
        """The range ended well: the destination holds everything before :attr:`at`."""
        self._ended = True
        self._moved.set()

    async def reach(self, offset: int, lag: int) -> bool:
        """Whether the destination holds the bytes before ``offset``: the range got
        ``lag`` bytes past it, or ended well past it (False when it ended short of it)."""
        while not self._ended and self.at < offset + lag:
            self._moved.clear()
            await self._moved.wait()
        return self.at >= offset


@dataclass(slots=True)
class LocalRanges:
    """The chunks of one file for its one destination, as ranges of the local file."""

    context: RunContext
    relpath: str
    src: str
    """The source file's path."""
    chunks: list[tuple[int, int]]
    """(start, length) of each chunk."""
    crcs: list[int]
    """The CRC32C of each chunk, filled in as an upload reads them."""
    wrote: Callable[[Destination, int, float], None]
    """Told of bytes written: their destination, number, and when their writing began."""
    held: Callable[[Destination, int, int], None] | None = None
    """Told that a destination holds a chunk whole: the chunk's number and CRC32C (for the
    journal); None when nothing is journaled."""
    _checked: dict[int, asyncio.Event] = field(default_factory=dict)
    """Set when the upload's checksum of a chunk is in :attr:`crcs`."""

    def ranges(self, parallel: int) -> list[range]:
        """The chunk numbers of each range: the whole file when its ranges would go one
        at a time anyway (no session to start between them)."""
        count = len(self.chunks)
        if parallel == 1:
            return [range(count)]
        per_range = max(1, RANGE_SIZE // max(length for _, length in self.chunks))
        return [range(first, min(first + per_range, count)) for first in range(0, count, per_range)]

    async def copy(
        self,
        direction: Direction,
        destination: Destination,
        reader: Reader,
        writer: Writer,
        parallel: int,
        failures: dict[Destination, Exception],
    ) -> None:
        """Move every range, ``parallel`` at once; the first failure is recorded in
        ``failures``, and the ranges not started yet are skipped."""

        async def move(numbers: range, progress: _Progress) -> None:
            if direction is Direction.LOCAL_SOURCE:
                await self._upload(destination, writer, numbers, progress)
            else:
                await self._download(destination, reader, writer, numbers, progress)

        limit = asyncio.Semaphore(parallel)
        async with asyncio.TaskGroup() as group:
            for numbers in self.ranges(parallel):
                group.create_task(self._range(destination, move, numbers, limit, failures))

    async def _range(
        self,
        destination: Destination,
        move: _Move,
        numbers: range,
        limit: asyncio.Semaphore,
        failures: dict[Destination, Exception],
    ) -> None:
        async with limit:
            if destination in failures:
                return
            self._mark(destination, numbers, ChunkState.RUNNING)
            since = time.monotonic()

            def progress(moved: int) -> None:
                nonlocal since
                self.wrote(destination, moved, since)
                since = time.monotonic()

            try:
                await move(numbers, progress)
            except Exception as exc:
                self._mark(destination, numbers, ChunkState.ERRORED)
                failures.setdefault(destination, exc)
                return
            except BaseException:  # cancelled: the programs and threads are done first
                self._mark(destination, numbers, ChunkState.ERRORED)
                raise
            self._mark(destination, numbers, ChunkState.FINISHED)

    def _mark(self, destination: Destination, numbers: range, state: ChunkState) -> None:
        for number in numbers:
            self.context.chunks[(self.relpath, number, destination.index)] = state

    def _span(self, numbers: range) -> tuple[int, int]:
        """Where the chunks ``numbers`` start, and their length together."""
        return self.chunks[numbers[0]][0], sum(self.chunks[number][1] for number in numbers)

    # -- upload -------------------------------------------------------------------------------

    async def _upload(
        self, destination: Destination, writer: Writer, numbers: range, progress: _Progress
    ) -> None:
        start, size = self._span(numbers)
        crc = asyncio.create_task(self._checksum(numbers))
        try:
            async with self._following(destination, numbers, IN_FLIGHT, self._source_crc) as at:
                async with self.context.sessions.slot(destination.location):
                    await writer.write_local(start, self.src, size, crc, _told(at, progress))
                await crc  # the writer may not have needed it (a failure it did not raise)
        finally:
            if not crc.done():
                crc.cancel()
                await asyncio.wait([crc])

    async def _source_crc(self, number: int) -> int | None:
        await self._checked.setdefault(number, asyncio.Event()).wait()
        return self.crcs[number]

    async def _checksum(self, numbers: range) -> int:
        """The CRC32C of the chunks ``numbers``, each read in a worker thread; the source's
        error if the file no longer holds them."""
        source = self.context.source.location
        value = 0
        for number in numbers:
            start, length = self.chunks[number]
            started = time.monotonic()
            done, crc = await asyncio.to_thread(_range_crc32c, self.src, start, length)
            self.context.stats.read(source, done, time.monotonic() - started)
            if done != length:
                raise source_changed(source, self.src, start + length, start + done)
            self.crcs[number] = crc
            self._checked.setdefault(number, asyncio.Event()).set()
            value = crc32c_combine(value, crc, length) if number != numbers[0] else crc
        return value

    # -- chunks held, for the journal ---------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _following(
        self,
        destination: Destination,
        numbers: range,
        lag: int,
        crc_of: Callable[[int], Awaitable[int | None]],
    ) -> AsyncIterator[_Position]:
        """The range's position, with a task telling :attr:`held` of each chunk the
        destination comes to hold (when journaled). The task ends with the range: it
        finishes the chunks the range reached when the range ended well, else it stops."""
        position = _Position(self.chunks[numbers[0]][0])
        if self.held is None:
            yield position
            return
        follower = asyncio.create_task(self._follow(destination, numbers, position, lag, crc_of))
        try:
            yield position
        except BaseException:
            follower.cancel()
            await asyncio.wait([follower])
            raise
        position.end()
        await follower

    async def _follow(
        self,
        destination: Destination,
        numbers: range,
        position: _Position,
        lag: int,
        crc_of: Callable[[int], Awaitable[int | None]],
    ) -> None:
        assert self.held is not None
        for number in numbers:
            start, length = self.chunks[number]
            if not await position.reach(start + length, lag):
                return
            crc = await crc_of(number)
            if crc is None:
                return
            self.held(destination, number, crc)

    # -- download -----------------------------------------------------------------------------

    async def _download(
        self,
        destination: Destination,
        reader: Reader,
        writer: Writer,
        numbers: range,
        progress: _Progress,
    ) -> None:
        start, size = self._span(numbers)
        source = self.context.source.location
        path = writer.local_file
        assert path is not None  # chosen for it

        async def stored_crc(number: int) -> int | None:
            first, length = self.chunks[number]
            done, crc = await asyncio.to_thread(_range_crc32c, path, first, length)
            return crc if done == length else None

        started = time.monotonic()
        async with self._following(destination, numbers, 0, stored_crc) as at:
            told = _told(at, progress)
            try:
                async with self.context.sessions.slot(source):
                    got = await reader.read_local(start, size, path, told)
            except Exception as exc:
                self.context.stats.error(exc)
                done = at.at - start
                got = done + await self._through_here(
                    destination, reader, writer, at.at, size - done, told
                )
        self.context.stats.read(source, got, time.monotonic() - started)
        if got != size:
            raise source_changed(source, self.src, start + size, start + got)

    async def _through_here(
        self,
        destination: Destination,
        reader: Reader,
        writer: Writer,
        offset: int,
        size: int,
        progress: _Progress,
    ) -> int:
        """Move ``size`` bytes from ``offset`` block by block through this process, as the
        engine's block path does; the bytes moved (fewer at the end of the file)."""
        context = self.context
        moved = 0
        while moved < size:
            block = await context.pool.acquire()
            try:
                wanted = min(block.buffer.nbytes, size - moved)
                async with context.sessions.slot(context.source.location):
                    got = await reader.readinto(offset + moved, block.buffer[:wanted])
                if got:
                    async with context.sessions.slot(destination.location):
                        await writer.write(offset + moved, block.buffer[:got])
            finally:
                context.pool.release(block)
            moved += got
            progress(got)
            if got < wanted:
                break
        return moved


def _told(position: _Position, progress: _Progress) -> _Progress:
    """``progress``, moving ``position`` first."""

    def told(moved: int) -> None:
        position.advance(moved)
        progress(moved)

    return told


def _range_crc32c(path: str, start: int, length: int) -> tuple[int, int]:
    fd = os.open(path, os.O_RDONLY)
    try:
        return crc32c_of_file(fd, start, length)
    finally:
        os.close(fd)
