"""Moving many small files in bulk: one connector round trip per batch, not per file.

The small files of a tree (each at most a block) are grouped into batches of at most
``max_batch_files`` files and one block of data (fewer files per batch when that leaves
workers idle: see :func:`batches`). A batch is read with one
:meth:`~streamflow_data.Connector.read_files` and written to each destination with one
:meth:`~streamflow_data.Connector.write_files` (or copied with one
:meth:`~streamflow_data.Connector.copy_files` on the source's own location); connectors
turn those into a single thread hop, or a packed stream. The worker that read a batch
reads the next while the batch is written. The source's connector bounds the batches
read at once, and each destination's those written there
(:meth:`~streamflow_data.Connector.batch_streams`). Every file is still verified
before it is published. A file that fails in a batch with a retryable error is retried on
its own, through :class:`~streamflow_data.transfer.filecopy.FileCopy`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TypeVar

from streamflow_data.connectors.base import CopyItem, FileStat, WriteItem
from streamflow_data.errors import ChecksumMismatchError, ConnectorError
from streamflow_data.model import Digest, ExecutionLocation, Verification
from streamflow_data.transfer.context import Destination, RunContext, source_changed
from streamflow_data.transfer.filecopy import FileCopy
from streamflow_data.transfer.state import FileState

__all__ = ["BatchCopy", "SmallFile", "batches"]

Item = TypeVar("Item", CopyItem, WriteItem)


@dataclass(frozen=True, slots=True)
class SmallFile:
    """A file of a batch: its place in the transfer, its source path and metadata."""

    relpath: str
    src: str
    stat: FileStat


def batches(
    files: Sequence[SmallFile], max_files: int, max_bytes: int, workers: int
) -> Iterator[list[SmallFile]]:
    """Consecutive groups of at most ``max_files`` files and ``max_bytes`` bytes.

    Each batch costs a round trip or a remote process, so batches are as large as allowed;
    but a tree that would fill fewer batches than ``workers`` is split into up to
    ``workers`` batches of at least a quarter of ``max_files``, so that small trees still
    move several batches at once.
    """
    count = -(-len(files) // max_files)
    if count < workers:
        count = max(count, min(workers, -(-len(files) // max(max_files // 4, 1))))
    size = -(-len(files) // count) if files else max_files
    batch: list[SmallFile] = []
    used = 0
    for file in files:
        if batch and (len(batch) == size or used + file.stat.size > max_bytes):
            yield batch
            batch, used = [], 0
        batch.append(file)
        used += file.stat.size
    if batch:
        yield batch


class BatchCopy:
    """One batch of small files, to every destination still in the transfer."""

    def __init__(self, context: RunContext, files: list[SmallFile]) -> None:
        self.context = context
        self.files = files
        self._retry: dict[SmallFile, list[Destination]] = {}

    async def run(self, destinations: list[Destination], writes: asyncio.TaskGroup) -> None:
        """Read the batch and leave its writes, then its retries, to ``writes``: the caller
        reads the next batch while this one is written. The block the batch holds until
        it is written bounds the memory of batches read ahead; the source's
        ``batch_streams`` bounds the batches read at once."""
        for file in self.files:
            for destination in destinations:
                self.context.files[(file.relpath, destination.index)] = FileState.TRANSFERRING
        streamed = [d for d in destinations if not d.server_copy]
        if not streamed:
            writes.create_task(self._deliver(destinations, None))
            return
        async with self.context.batch_slots:
            await self.context.pool.reserve()  # the batch's data fits one block
            try:
                read = await self._read(streamed)
            except BaseException:
                self.context.pool.unreserve()
                raise
        writes.create_task(self._deliver(destinations, read))

    async def _deliver(self, destinations: list[Destination], read: _Read | None) -> None:
        """Write what was read (and copy within the source's location), give its place in
        the pool back, then retry the files that failed with a retryable error, alone."""
        try:
            async with asyncio.TaskGroup() as group:
                for destination in destinations:
                    if destination.server_copy:
                        group.create_task(self._copy_within(destination))
                    elif read is not None:
                        group.create_task(self._write_to(destination, read))
        finally:
            if read is not None:
                self.context.pool.unreserve()
        for file, retried in self._retry.items():
            retried = [destination for destination in retried if destination.error is None]
            if retried:
                copy = FileCopy(self.context, file.relpath, file.src, file.stat)
                await copy.run(retried)

    # -- outcomes ----------------------------------------------------------------------------

    def _failed(self, file: SmallFile, destination: Destination, error: Exception) -> None:
        context = self.context
        context.stats.error(error)
        mismatch = isinstance(error, ChecksumMismatchError)
        context.files[(file.relpath, destination.index)] = (
            FileState.INVALID if mismatch else FileState.FAILED
        )
        if isinstance(error, ConnectorError) and error.retryable:
            self._retry.setdefault(file, []).append(destination)
            return
        context.progress.file_failed(destination.index)
        destination.fail(error)

    async def _bulk(
        self,
        destination: Destination,
        files: Sequence[SmallFile],
        operation: Callable[
            [ExecutionLocation, Sequence[Item]], Awaitable[list[ConnectorError | None]]
        ],
        items: Sequence[Item],
        checked: Verification,
    ) -> None:
        """Run one bulk operation at a destination and settle each file's outcome (the
        files it wrote were ``checked`` so).

        An error of the whole call (a dropped connection) is every file's error.
        """
        started = time.monotonic()
        try:
            results: Sequence[Exception | None] = await operation(destination.location, items)
        except ConnectorError as exc:
            results = [exc] * len(items)
        states = self.context.files
        written = done = 0
        for file, error in zip(files, results, strict=True):
            if error is None:
                states[(file.relpath, destination.index)] = FileState.VALID
                written += file.stat.size
                done += 1
            else:
                self._failed(file, destination, error)
        if done:
            self.context.progress.files_done(destination.index, done, written, checked)
        self.context.stats.wrote(destination.location, written, time.monotonic() - started)

    # -- within the source's location ----------------------------------------------------------

    async def _copy_within(self, destination: Destination) -> None:
        items = [
            CopyItem(
                f.src,
                destination.target(f.relpath),
                mode=f.stat.mode,
                mtime_ns=f.stat.mtime_ns,
                size=f.stat.size,
                atomic=not destination.staged,
            )
            for f in self.files
        ]
        copy = destination.connector.copy_files
        await self._bulk(destination, self.files, copy, items, Verification.SIZE)

    # -- streamed ---------------------------------------------------------------------------------

    async def _read(self, destinations: list[Destination]) -> _Read:
        """The batch's files from the source, each with its digest when writes are
        verified; a file that cannot be read fails at every one of ``destinations``."""
        context = self.context
        source = context.source
        started = time.monotonic()
        try:
            contents = await source.connector.read_files(
                source.location, [f.src for f in self.files]
            )
        except ConnectorError as exc:
            contents = [exc] * len(self.files)
        readable: list[tuple[SmallFile, bytes]] = []
        for file, content in zip(self.files, contents, strict=True):
            if isinstance(content, bytes) and len(content) != file.stat.size:
                content = source_changed(source.location, file.src, file.stat.size, len(content))
            if isinstance(content, Exception):
                for destination in destinations:
                    self._failed(file, destination, content)
            else:
                readable.append((file, content))
        size = sum(len(data) for _, data in readable)
        context.stats.read(source.location, size, time.monotonic() - started)
        digests: list[Digest | None] = [None] * len(readable)
        if context.settings.verify_writes:
            digests[:] = await asyncio.to_thread(lambda: [Digest.of(d) for _, d in readable])
        return _Read(readable, digests)

    async def _write_to(self, destination: Destination, read: _Read) -> None:
        files = [file for file, _ in read.files]
        items = [
            WriteItem(
                destination.target(f.relpath),
                data,
                mode=f.stat.mode,
                mtime_ns=f.stat.mtime_ns,
                expected=digest,
                atomic=not destination.staged,
            )
            for (f, data), digest in zip(read.files, read.digests, strict=True)
        ]
        verify = self.context.settings.verify_writes
        checked = destination.connector.capabilities.verification if verify else Verification.NONE
        async with self.context.batch_write(destination):
            await self._bulk(destination, files, destination.connector.write_files, items, checked)


@dataclass(frozen=True, slots=True)
class _Read:
    """A batch as read from the source: the files that could be read, with their bytes,
    and their digests (None when writes are not verified)."""

    files: list[tuple[SmallFile, bytes]]
    digests: list[Digest | None]
