"""Copying one file to its destinations: read once, written everywhere, verified, retried.

The flow of a file larger than a block, for one attempt::

    source reader ──blocks──► crc32c ─► queue of destination 1 ──► writer 1 ──┐
     (chunks in parallel        │   └─► queue of destination 2 ──► writer 2 ──┤
      when every destination    │                                            ▼
      takes ranged writes)      └──────── chunk checksums combined ───► commit(expected digest)

A block goes back to the pool when the last destination has written it, so memory stays
within the pool whatever the file size, and a full pool makes the reader wait. A
destination that fails is retried alone (the source is read again for it) when the error
is retryable and it has retries left; a failed block write is first retried in place when
the destination takes ranged writes. A file of this machine may go by connectors' own
routes instead (``Connector.put_file`` of every destination, or ``get_file`` into a
local destination's file), which tell the engine what they moved through
:class:`~streamflow_data.connectors.localcopy.CopyEvents`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import posixpath
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from streamflow_data.checksum import crc32c_async, crc32c_combine
from streamflow_data.connectors.base import FileStat, LocalFile, Reader, Writer
from streamflow_data.connectors.localcopy import SourceChecksums
from streamflow_data.errors import (
    ChecksumMismatchError,
    ConnectorError,
    PathNotFoundError,
    StreamFlowDataError,
)
from streamflow_data.model import Digest, Verification
from streamflow_data.transfer.blocks import BlockState, BufferBlock
from streamflow_data.transfer.context import Destination, RunContext
from streamflow_data.transfer.journal import PriorCopy
from streamflow_data.transfer.resume import FileResume
from streamflow_data.transfer.routes import RouteEvents, every_route, follow_routes, own_route
from streamflow_data.transfer.sourcefile import SourceError, SourceFile
from streamflow_data.transfer.state import ChunkState, FileState

__all__ = ["FileCopy"]

T = TypeVar("T")


def _retryable(error: Exception) -> bool:
    return isinstance(error, ConnectorError) and error.retryable


# An attempt returns the destinations that failed, with why.
_Failures = dict[Destination, Exception]


class FileCopy:
    """One file of a transfer, to every destination still in the transfer."""

    def __init__(self, context: RunContext, relpath: str, src: str, stat: FileStat):
        self.context = context
        self.settings = context.settings
        self.relpath = relpath
        self.src = src
        self.stat = stat
        self.source = SourceFile(context, src, stat)
        self.chunk_count = max(1, -(-stat.size // self.settings.chunk_size))
        self._written: dict[int, int] = {}  # bytes written per destination index, this attempt
        self._outstanding: dict[tuple[int, int], int] = {}  # blocks of (chunk, destination)
        self._read_chunks: set[int] = set()  # chunks whose blocks have all been queued
        self._resume = FileResume(context.journal, relpath, self.settings.chunk_size)
        self._priors: dict[int, PriorCopy] = {}  # partial files of an earlier run to continue
        self._resumed: dict[int, int] = {}  # bytes a destination held from an earlier run
        self._checked: dict[int, Verification] = {}  # how this attempt's copy was checked
        self._lost: _Failures = {}
        """The destinations the current streaming attempt has lost, and why: its drains
        stop writing there, and the attempt returns it."""

    async def run(self, destinations: list[Destination]) -> None:
        """Copy to ``destinations``; a destination where the file fails for good gets its
        ``error`` set."""
        for destination in destinations:
            self.context.files[(self.relpath, destination.index)] = FileState.PENDING
            prior = self.context.prior.files.get((self.relpath, destination.index))
            if prior is not None and prior.token is not None and not destination.server_copy:
                self._priors[destination.index] = prior
        copies = [d for d in destinations if d.server_copy]
        streamed = [d for d in destinations if not d.server_copy]
        async with asyncio.TaskGroup() as group:
            for destination in copies:
                group.create_task(self._with_retries([destination], self._server_copy))
            if streamed:
                group.create_task(self._with_retries(streamed, self._stream))

    # -- retries and states -------------------------------------------------------------------

    async def _with_retries(
        self,
        destinations: list[Destination],
        attempt: Callable[[list[Destination]], Awaitable[_Failures]],
    ) -> None:
        files, progress, stats = self.context.files, self.context.progress, self.context.stats
        tries = 0
        pending = destinations
        while pending:
            for destination in pending:
                files[(self.relpath, destination.index)] = FileState.TRANSFERRING
            failures = await attempt(pending)
            retry = []
            for destination in pending:
                key = (self.relpath, destination.index)
                written = self._written.pop(destination.index, 0)
                error = failures.get(destination)
                if error is None:
                    files[key] = FileState.VALID
                    progress.file_done(destination.index)
                    checked = self._checked.pop(destination.index, Verification.SIZE)
                    progress.verified(destination.index, checked)
                    continue
                stats.error(error)
                # A retry starts over: what this attempt wrote, and what it had continued
                # (counted as skipped, and as done) are taken back once each.
                resumed = self._resumed.pop(destination.index, 0)
                progress.add_bytes(destination.index, -(written - resumed))
                progress.skip(destination.index, 0, -resumed)
                self._resume.forget(destination.index)
                mismatch = isinstance(error, ChecksumMismatchError)
                files[key] = FileState.INVALID if mismatch else FileState.FAILED
                if _retryable(error) and tries < self.settings.max_retries:
                    retry.append(destination)
                    continue
                progress.file_failed(destination.index)
                destination.fail(error)
            if retry:
                tries += 1
                stats.retries += len(retry)
                await asyncio.sleep(self.settings.retry_wait(tries))
                for destination in retry:
                    files[(self.relpath, destination.index)] = FileState.PENDING
            pending = retry

    def _journal_held(self, destination: Destination, number: int, crc: int) -> None:
        """Journal a chunk the destination holds whole (moved in a file range)."""
        start, length = self._chunk_range(number)
        self._resume.read(start + length, crc)
        self._resume.written(destination.index, number, start, start + length)

    def _count_resumed(self, index: int, size: int) -> None:
        """Destination ``index`` holds ``size`` more bytes from an earlier run."""
        self._resumed[index] = self._resumed.get(index, 0) + size
        self._written[index] = self._written.get(index, 0) + size
        self.context.progress.skip(index, 0, size)

    def _count_written(self, destination: Destination, size: int, started: float) -> None:
        self.context.stats.wrote(destination.location, size, time.monotonic() - started)
        self.context.progress.add_bytes(destination.index, size)
        self._written[destination.index] = self._written.get(destination.index, 0) + size

    async def _in_parent(
        self, destination: Destination, operation: Callable[[Destination], Awaitable[T]]
    ) -> T:
        """Apply ``operation`` to the destination; for a file root whose parent directory
        is missing, create the parent and try again (a tree's directories exist already)."""
        try:
            return await operation(destination)
        except PathNotFoundError:
            if self.context.root_is_directory:
                raise
            parent = posixpath.dirname(destination.target(self.relpath))
            await destination.connector.mkdir(destination.location, parent)
            return await operation(destination)

    # -- server-side copy ---------------------------------------------------------------------

    async def _server_copy(self, destinations: list[Destination]) -> _Failures:
        [destination] = destinations
        stat = self.stat

        async def copy(destination: Destination) -> None:
            await destination.connector.copy(
                destination.location,
                self.src,
                destination.target(self.relpath),
                mode=stat.mode,
                mtime_ns=stat.mtime_ns,
                size=stat.size,
                atomic=not destination.staged,
            )

        started = time.monotonic()
        try:
            await self._in_parent(destination, copy)
        except Exception as exc:
            return {destination: exc}
        # The location read the source to write the copy: both count in its statistics.
        elapsed = time.monotonic() - started
        self.context.stats.read(self.context.source.location, stat.size, elapsed)
        self._count_written(destination, stat.size, started)
        return {}

    # -- streaming ------------------------------------------------------------------------------

    async def _stream(self, destinations: list[Destination]) -> _Failures:
        """One attempt for ``destinations``: read the source once, write it to each."""
        try:
            if self.stat.size <= self.settings.block_size:
                return await self._stream_small(destinations)
            return await self._stream_blocks(destinations)
        except SourceError as exc:
            return dict.fromkeys(destinations, exc.cause)

    async def _stream_small(self, destinations: list[Destination]) -> _Failures:
        """Read the whole file in one operation, write it whole to each destination."""
        context = self.context
        source = context.source
        await context.pool.reserve()  # the data fits one block
        try:
            started = time.monotonic()
            async with self.source.reading():
                data = await source.connector.read_file(source.location, self.src)
            context.stats.read(source.location, len(data), time.monotonic() - started)
            self.source.check_size(len(data))
            verify = self.settings.verify_writes
            expected = Digest(len(data), await crc32c_async(data)) if verify else None
            for destination in destinations:
                kind = destination.connector.capabilities.verification
                self._checked[destination.index] = kind if verify else Verification.NONE

            async def write(destination: Destination) -> Exception | None:
                async def operation(destination: Destination) -> None:
                    await destination.connector.write_file(
                        destination.location,
                        destination.target(self.relpath),
                        data,
                        mode=self.stat.mode,
                        mtime_ns=self.stat.mtime_ns,
                        expected=expected,
                        atomic=not destination.staged,
                    )

                started = time.monotonic()
                try:
                    await self._in_parent(destination, operation)
                except Exception as exc:
                    return exc
                self._count_written(destination, len(data), started)
                return None

            async with asyncio.TaskGroup() as group:
                writes = {d: group.create_task(write(d)) for d in destinations}
            return {d: error for d, task in writes.items() if (error := task.result()) is not None}
        finally:
            context.pool.unreserve()

    async def _stream_blocks(self, destinations: list[Destination]) -> _Failures:
        """Stream a large file through pool blocks to a writer per destination."""
        lost = self._lost = {}

        async with contextlib.AsyncExitStack() as stack:
            async with self.source.reading():
                source = self.context.source
                reader = await source.connector.open_reader(source.location, self.src)
            stack.push_async_callback(reader.close)
            writers: dict[Destination, Writer] = {}
            for destination in destinations:
                try:
                    writer = await self._open_writer(destination)
                except Exception as exc:
                    lost[destination] = exc
                    continue
                stack.push_async_callback(self._release, writer)
                writers[destination] = writer
            if writers:
                await self.context.journal.flush()  # resume tokens before any byte
                digest = await self._pump(reader, writers)
                await self._commit(writers, digest)
                # Changed while committed: the copies hold the whole version read, which
                # is no longer the file's; they fail, and a retry copies the file again.
                committed = len(lost) < len(writers)
                if committed and (changed := await self.source.change(reader, read=False)):
                    for destination in writers:
                        lost.setdefault(destination, changed)
        return dict(lost)

    async def _open_writer(self, destination: Destination) -> Writer:
        """Continue the partial file of an earlier run if there is one, else start anew."""
        connector, location = destination.connector, destination.location
        target = destination.target(self.relpath)
        prior = self._priors.pop(destination.index, None)  # a retry starts over
        if prior is not None and prior.token is not None:
            try:
                writer = await connector.resume_writer(
                    location,
                    target,
                    prior.token,
                    mode=self.stat.mode,
                    mtime_ns=self.stat.mtime_ns,
                    atomic=not destination.staged,
                )
            except StreamFlowDataError:
                pass  # gone or unusable: the file starts from zero
            else:
                self._count_resumed(destination.index, self._resume.adopt(destination.index, prior))
                self._resume.track(destination.index)
                if self.context.source.location.local:  # its blocks cost no network to read
                    size, block = self.stat.size, self.settings.block_size
                    await self._resume.ask_held(destination.index, writer, size, block)
                return writer

        async def open_writer(destination: Destination) -> Writer:
            return await connector.open_writer(
                location,
                target,
                mode=self.stat.mode,
                mtime_ns=self.stat.mtime_ns,
                atomic=not destination.staged,
            )

        writer = await self._in_parent(destination, open_writer)
        if writer.resume_token is not None and self.context.journal.resumable:
            self.context.journal.token(self.relpath, destination.index, writer.resume_token)
            self._resume.track(destination.index)
            if self.stat.size > self.settings.block_size:
                # The partial file is known before it holds data: a run killed now is
                # resumed into it, not left with a stray partial file beside the copy.
                await self.context.journal.flush()
        return writer

    async def _release(self, writer: Writer) -> None:
        """Discard an uncommitted writer; when cancelled with a journal, keep its bytes
        for the next run instead."""
        task = asyncio.current_task()
        if task is not None and task.cancelling() and self.context.journal.resumable:
            await writer.suspend()
        else:
            await writer.abort()

    async def _pump(self, reader: Reader, writers: dict[Destination, Writer]) -> Digest | None:
        """Move every block from the reader to the writers; returns the file's digest
        (None when writes are not verified, or a connector's own route moved the file)."""
        self._outstanding.clear()  # a retry starts its chunks over
        self._read_chunks.clear()
        self._resume.begin_attempt()
        ranged = all(d.connector.capabilities.ranged_writes for d in writers)
        parallel = self._chunk_streams(writers) if ranged else 1
        if ranged and (routes := self._own_routes(reader, writers, parallel)) is not None:
            self._lost.update(await follow_routes(routes, self._mark_chunks))
            if changed := await self.source.change(reader):
                raise SourceError(changed)
            return None
        drains_per_destination = parallel
        queues: dict[Destination, asyncio.Queue[BufferBlock | None]] = {
            destination: asyncio.Queue() for destination in writers
        }
        chunk_crcs = [0] * self.chunk_count
        source_error: list[Exception] = []

        async def produce() -> None:
            try:
                if parallel > 1 and self.chunk_count > 1:
                    limit = asyncio.Semaphore(parallel)

                    async def read(number: int) -> None:
                        async with limit:
                            await self._read_chunk(reader, number, queues, chunk_crcs)

                    async with asyncio.TaskGroup() as group:
                        for number in range(self.chunk_count):
                            group.create_task(read(number))
                else:
                    for number in range(self.chunk_count):
                        await self._read_chunk(reader, number, queues, chunk_crcs)
            except* Exception as group:
                source_error.extend(group.exceptions)
            finally:
                for queue in queues.values():
                    for _ in range(drains_per_destination):
                        queue.put_nowait(None)

        try:
            async with asyncio.TaskGroup() as group:
                for destination, queue in queues.items():
                    writer = writers[destination]
                    for _ in range(drains_per_destination):
                        group.create_task(self._drain(destination, writer, queue))
                group.create_task(produce())
        finally:
            self.context.pool.let_go_queued(queues.values())  # after a cancellation
        if source_error:
            error = source_error[0]
            raise error if isinstance(error, SourceError) else SourceError(error)
        # A file changed while it was read would give copies matching neither version:
        # the attempt fails (retryable: the file is read again) and nothing is published.
        if changed := await self.source.change(reader):
            raise SourceError(changed)
        if not self.settings.verify_writes:
            return None
        crc = chunk_crcs[0]
        for number in range(1, self.chunk_count):
            crc = crc32c_combine(crc, chunk_crcs[number], self._chunk_range(number)[1])
        return Digest(self.stat.size, crc)

    def _own_routes(
        self, reader: Reader, writers: dict[Destination, Writer], parallel: int
    ) -> dict[Destination, Awaitable[None]] | None:
        """The file moved by connectors' own routes (see :mod:`.routes`), or None: one
        destination's, or the ``put_file`` of every destination of a local file; not for
        a writer continued from an earlier run's file, whose chunk marks only blocks
        follow."""
        source = self.context.source
        if any(d.index in self._resumed for d in writers) or (
            len(writers) > 1 and reader.local_file is None
        ):
            return None
        chunk = self.settings.chunk_size
        read = functools.partial(self.context.stats.read, source.location)
        checksums = None
        if reader.local_file is not None and len(writers) > 1:
            chunks = LocalFile(reader.local_file, self.stat.size, chunk, parallel).chunks()
            checksums = SourceChecksums(reader.local_file, chunks, read)

        def route_of(destination: Destination, writer: Writer) -> Awaitable[None] | None:
            events = RouteEvents(
                journaled=self._resume.tracking(destination.index),
                moved=functools.partial(self._count_written, destination),
                read=read,
                recovered=self.context.stats.error,
                held=functools.partial(self._journal_held, destination),
            )
            return own_route(
                reader,
                writer,
                source.connector,
                destination.connector,
                lambda path: LocalFile(path, self.stat.size, chunk, parallel, checksums),
                events,
            )

        return every_route(writers, route_of)

    def _mark_chunks(self, destination: Destination, state: ChunkState) -> None:
        for number in range(self.chunk_count):
            self.context.chunks[(self.relpath, number, destination.index)] = state

    def _chunk_streams(self, writers: dict[Destination, Writer]) -> int:
        """Chunks of this file moved at once: ``max_concurrent_chunks``, or fewer when the
        connector of the source or of a destination says more would not help."""
        source = self.context.source
        ends = [(source.connector, source.location)]
        ends += [(destination.connector, destination.location) for destination in writers]
        hints = [hint for c, location in ends if (hint := c.chunk_streams(location)) is not None]
        return min([self.settings.max_concurrent_chunks, *hints])

    def _chunk_range(self, number: int) -> tuple[int, int]:
        start = number * self.settings.chunk_size
        return start, min(self.settings.chunk_size, self.stat.size - start)

    async def _read_chunk(
        self,
        reader: Reader,
        number: int,
        queues: dict[Destination, asyncio.Queue[BufferBlock | None]],
        chunk_crcs: list[int],
    ) -> None:
        context = self.context
        start, length = self._chunk_range(number)
        resume = self._resume
        skip, crc = resume.read_from(number, [d.index for d in queues])
        if skip == length:  # every destination holds the whole chunk already
            for destination in queues:
                context.chunks[(self.relpath, number, destination.index)] = ChunkState.FINISHED
            chunk_crcs[number] = crc
            self._read_chunks.add(number)
            return
        async with context.chunk_slots:
            for destination in queues:
                context.chunks[(self.relpath, number, destination.index)] = ChunkState.RUNNING
            offset = start + skip
            while offset < start + length:
                block = await context.pool.acquire()
                try:
                    size = min(block.buffer.nbytes, start + length - offset)
                    started = time.monotonic()
                    async with self.source.reading():
                        got = await reader.readinto(offset, block.buffer[:size])
                    if got != size:
                        self.source.check_size(offset + got)
                    context.stats.read(context.source.location, got, time.monotonic() - started)
                    block.offset, block.length, block.tag = offset, got, number
                    if self.settings.verify_writes:
                        crc = await crc32c_async(block.data, crc)
                except BaseException:
                    context.pool.release(block)
                    raise
                resume.read(offset + got, crc)
                wanted = [
                    (destination, queue)
                    for destination, queue in queues.items()
                    if resume.done(destination.index, number) <= offset - start
                ]
                block.state = BlockState.PENDING
                block.holders = len(wanted)
                for destination, queue in wanted:
                    outstanding = (number, destination.index)
                    self._outstanding[outstanding] = self._outstanding.get(outstanding, 0) + 1
                    queue.put_nowait(block)
                offset += got
            chunk_crcs[number] = crc
            self._read_chunks.add(number)
            for destination in queues:  # those that needed none of the blocks read
                if not self._outstanding.get((number, destination.index)):
                    key = (self.relpath, number, destination.index)
                    if context.chunks[key] is ChunkState.RUNNING:
                        context.chunks[key] = ChunkState.FINISHED

    async def _drain(
        self,
        destination: Destination,
        writer: Writer,
        queue: asyncio.Queue[BufferBlock | None],
    ) -> None:
        """Write the blocks of one destination; after a failure, only release them."""
        context = self.context
        while (block := await queue.get()) is not None:
            key = (self.relpath, block.tag, destination.index)
            try:
                if destination not in self._lost:
                    await self._write_block(destination, writer, block)
                    end = block.offset + block.length
                    self._resume.written(
                        destination.index, block.tag, block.offset, end, writer.in_flight
                    )
                    outstanding = (block.tag, destination.index)
                    self._outstanding[outstanding] -= 1
                    if not self._outstanding[outstanding] and block.tag in self._read_chunks:
                        context.chunks[key] = ChunkState.FINISHED
            except Exception as exc:
                self._lost[destination] = exc
                context.chunks[key] = ChunkState.ERRORED
            finally:
                context.pool.let_go(block)

    async def _write_block(
        self, destination: Destination, writer: Writer, block: BufferBlock
    ) -> None:
        """Write one block, retrying it in place when the destination takes ranged writes."""
        if await self._resume.holds(destination.index, block.offset, block.data):
            self._count_resumed(destination.index, block.length)
            return
        context = self.context
        tries = 0
        while True:
            started = time.monotonic()
            try:
                await writer.write(block.offset, block.data)
            except Exception as exc:
                ranged = destination.connector.capabilities.ranged_writes
                if not (ranged and _retryable(exc) and tries < self.settings.max_retries):
                    raise
                block.state = BlockState.ERROR
                context.stats.error(exc)
                context.stats.retries += 1
                tries += 1
                await asyncio.sleep(self.settings.retry_wait(tries))
                block.state = BlockState.PENDING
                continue
            self._count_written(destination, block.length, started)
            return

    async def _commit(self, writers: dict[Destination, Writer], digest: Digest | None) -> None:
        """Verify and publish every destination written without error."""

        async def commit(destination: Destination, writer: Writer) -> None:
            self.context.files[(self.relpath, destination.index)] = FileState.DONE
            try:
                await writer.commit(digest)
            except Exception as exc:
                self._lost[destination] = exc
            unchecked = Verification.SIZE if self.settings.verify_writes else Verification.NONE
            checked = unchecked if digest is None else writer.verification
            self._checked[destination.index] = checked

        async with asyncio.TaskGroup() as group:
            for destination, writer in writers.items():
                if destination not in self._lost:
                    group.create_task(commit(destination, writer))
