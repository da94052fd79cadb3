"""A file of this machine handed to the host's process in ranges, as ``put_file`` and
``get_file`` of the shell connector.

**Upload.** When the transport hands files over, a ``dd`` on the host writes each range,
and the transport feeds it the local file itself (``ssh`` reads it): the bytes never pass
through this process, which would otherwise read, copy and write every one of them
again. A range is read here meanwhile, for the CRC32C the writer's pieces record (the
stored size is what the commit compares of them: :attr:`Verification.SIZE
<streamflow_data.model.Verification.SIZE>`), never more than :data:`CRC_LEAD` ahead of
the transport: both read the same cached pages, and the storage once. A file put to
several hosts at once is handed to each host's transport, and read here once for all
(:class:`~streamflow_data.connectors.localcopy.SourceChecksums`).

**Download.** A ``dd`` on the host reads each range and its stream pours it into the
local destination's temporary file: the transport's process writes it itself where the
transport hands files over, else this process writes the bytes as they come, past the
engine's blocks. None is checksummed here: the copy is checked by the count of bytes each
range put in the file and by the statuses of the programs that moved them. A range whose
pouring fails is moved again, from where it stopped, through this process, block by block:
a failure of the local file (a full disk) is then reported by its errno, and a dropped
connection is retried as the engine's reads are.

With a journal (:attr:`CopyEvents.journaled`), each chunk the destination holds whole is
told to :meth:`CopyEvents.held` with its CRC32C, so that an interrupted transfer continues
the file from its chunks: a download's chunks are read back from the local file (its
offset says exactly what it holds); an upload's come from the source's checksum, and the
host is taken to hold a chunk once the transport has read ``IN_FLIGHT`` bytes past it
(what a channel window, the sockets and the pipe to ``dd`` can hold) or its range has
ended.

A range spans up to :data:`RANGE_SIZE` bytes: each costs a stream (a process at each end),
which measured 30% slower at 64 MiB than at 256 MiB per stream for a 1 GiB upload over
SSH. When the ranges would go one at a time, the whole file is one range.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable

from streamflow_data.checksum import crc32c_combine
from streamflow_data.connectors.localcopy import (
    CopyEvents,
    LocalFile,
    SourceChecksums,
    range_crc32c,
)
from streamflow_data.connectors.localfiles import pwrite_all
from streamflow_data.errors import ConnectorError, SourceChangedError
from streamflow_data.shell.lanes import local_error, open_local
from streamflow_data.shell.reader import ShellReader
from streamflow_data.shell.writer import IN_FLIGHT, ShellWriter
from streamflow_data.threads import settled

__all__ = ["CRC_LEAD", "RANGE_SIZE", "Handover"]

RANGE_SIZE = 256 * 1024 * 1024
"""Bytes handed over at once, in whole chunks (one chunk when chunks are larger)."""
CRC_LEAD = 1024 * 1024 * 1024
"""How far an upload's reading for the CRC32C may run ahead of the transport's reading
of the same file: the pages it reads are still cached when the transport reads them, so
the storage is read once, even for a file larger than memory. Ahead is where it costs
least: while the host's login shell starts, before the transport needs the CPU."""
_BLOCK = 1 << 20
"""Bytes moved at once through this process when a download's range fails."""

_Progress = Callable[[int], None]


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


class Handover:
    """One local file moved in ranges to or from one file on the host."""

    def __init__(self, local: LocalFile, events: CopyEvents) -> None:
        self.local = local
        self.events = events
        self.chunks = local.chunks()
        self.checksums = local.checksums or SourceChecksums(local.path, self.chunks, events.read)
        """The source's chunk checksums of an upload, shared with the other destinations'
        routes of the same file when the engine gave some."""
        self._crcs: dict[int, asyncio.Future[int]] = {}
        """The CRC32C of each chunk of an upload, as it is read."""

    def ranges(self) -> list[range]:
        """The chunk numbers of each range: the whole file when its ranges would go one
        at a time anyway (no stream to start between them)."""
        count = len(self.chunks)
        if self.local.streams == 1:
            return [range(count)]
        per_range = max(1, RANGE_SIZE // max(length for _, length in self.chunks))
        return [range(first, min(first + per_range, count)) for first in range(0, count, per_range)]

    async def upload(self, writer: ShellWriter) -> None:
        """Every range of the local file into ``writer``."""
        await self._each_range(lambda numbers, progress: self._upload(writer, numbers, progress))

    async def download(self, reader: ShellReader) -> None:
        """Every range of ``reader``'s file into the local file."""
        await self._each_range(lambda numbers, progress: self._download(reader, numbers, progress))

    async def _each_range(self, move: Callable[[range, _Progress], Awaitable[None]]) -> None:
        """``move`` each range, :attr:`LocalFile.streams` at once; after a failure, the
        ranges not started yet are skipped, and the first failure is raised."""
        limit = asyncio.Semaphore(self.local.streams)
        failures: list[Exception] = []

        async def run(numbers: range) -> None:
            async with limit:
                if failures:
                    return
                since = time.monotonic()

                def progress(moved: int) -> None:
                    nonlocal since
                    self.events.moved(moved, since)
                    since = time.monotonic()

                try:
                    await move(numbers, progress)
                except Exception as exc:
                    failures.append(exc)

        async with asyncio.TaskGroup() as group:
            for numbers in self.ranges():
                group.create_task(run(numbers))
        if failures:
            raise failures[0]

    def _crc_of(self, number: int) -> asyncio.Future[int]:
        """The future of chunk ``number``'s CRC32C in an upload, set once it is read."""
        future = self._crcs.get(number)
        if future is None:
            future = self._crcs[number] = asyncio.get_running_loop().create_future()
        return future

    def _span(self, numbers: range) -> tuple[int, int]:
        """Where the chunks ``numbers`` start, and their length together."""
        return self.chunks[numbers[0]][0], sum(self.chunks[number][1] for number in numbers)

    # -- upload -------------------------------------------------------------------------------

    async def _upload(self, writer: ShellWriter, numbers: range, progress: _Progress) -> None:
        start, size = self._span(numbers)
        async with self._following(numbers, IN_FLIGHT, self._source_crc) as at:
            crc = asyncio.create_task(self._checksum(writer, numbers, at))
            try:
                await writer.write_local(
                    start, self.local.path, size, crc, _advancing(at, progress)
                )
                await crc  # the writer may not have needed it (a failure it did not raise)
            finally:
                if not crc.done():
                    crc.cancel()
                    await asyncio.wait([crc])

    async def _source_crc(self, number: int) -> int | None:
        return await self._crc_of(number)

    async def _checksum(self, writer: ShellWriter, numbers: range, at: _Position) -> int:
        """The CRC32C of the chunks ``numbers``, each read in a worker thread once the
        transport's reading (``at``) is within :data:`CRC_LEAD` of it; our error if the
        file no longer holds them."""
        value = 0
        for number in numbers:
            start, length = self.chunks[number]
            await at.reach(start - CRC_LEAD, 0)
            try:
                done, crc = await self.checksums.of(number)
            except OSError as exc:
                raise local_error(exc, writer.location, self.local.path) from exc
            if done != length:
                detail = f"the local file {self.local.path!r} ends at {start + done} bytes"
                raise SourceChangedError(writer.location, writer.path, detail)
            self._crc_of(number).set_result(crc)
            value = crc32c_combine(value, crc, length) if number != numbers[0] else crc
        return value

    # -- chunks held, for the journal ---------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _following(
        self, numbers: range, lag: int, crc_of: Callable[[int], Awaitable[int | None]]
    ) -> AsyncIterator[_Position]:
        """The range's position, with a task telling :meth:`CopyEvents.held` of each chunk
        the destination comes to hold (when journaled). The task ends with the range: it
        finishes the chunks the range reached when the range ended well, else it stops."""
        position = _Position(self.chunks[numbers[0]][0])
        if not self.events.journaled:
            yield position
            return
        follower = asyncio.create_task(self._follow(numbers, position, lag, crc_of))
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
        numbers: range,
        position: _Position,
        lag: int,
        crc_of: Callable[[int], Awaitable[int | None]],
    ) -> None:
        for number in numbers:
            start, length = self.chunks[number]
            if not await position.reach(start + length, lag):
                return
            crc = await crc_of(number)
            if crc is None:
                return
            self.events.held(number, crc)

    # -- download -----------------------------------------------------------------------------

    async def _download(self, reader: ShellReader, numbers: range, progress: _Progress) -> None:
        start, size = self._span(numbers)
        path = self.local.path

        async def stored_crc(number: int) -> int | None:
            first, length = self.chunks[number]
            done, crc = await asyncio.to_thread(range_crc32c, path, first, length)
            return crc if done == length else None

        started = time.monotonic()
        async with self._following(numbers, 0, stored_crc) as at:
            advancing = _advancing(at, progress)
            try:
                got = await reader.read_local(start, size, path, advancing)
            except ConnectorError as exc:
                self.events.recovered(exc)
                done = at.at - start
                got = done + await self._through_here(reader, at.at, size - done, advancing)
        self.events.read(got, time.monotonic() - started)
        if got != size:
            detail = f"{start + size} bytes planned, {start + got} read"
            raise SourceChangedError(reader.transport.location, reader.path, detail)

    async def _through_here(
        self, reader: ShellReader, offset: int, size: int, progress: _Progress
    ) -> int:
        """Move ``size`` bytes from ``offset`` a block at a time through this process; the
        bytes moved (fewer at the end of the file)."""
        location, path = reader.transport.location, self.local.path
        buffer = memoryview(bytearray(min(_BLOCK, max(size, 1))))
        moved = 0
        fd = await open_local(location, path, os.O_WRONLY)
        try:
            while moved < size:
                wanted = min(len(buffer), size - moved)
                got = await reader.readinto(offset + moved, buffer[:wanted])
                if got:
                    try:
                        write = functools.partial(pwrite_all, fd, buffer[:got], offset + moved)
                        await settled(write)
                    except OSError as exc:
                        raise local_error(exc, location, path) from exc
                moved += got
                progress(got)
                if got < wanted:
                    break
        finally:
            os.close(fd)
        return moved


def _advancing(position: _Position, progress: _Progress) -> _Progress:
    """``progress``, moving ``position`` first."""

    def advancing(moved: int) -> None:
        position.advance(moved)
        progress(moved)

    return advancing
