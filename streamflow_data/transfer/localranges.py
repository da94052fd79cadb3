"""Chunks handed as file ranges to a writer that reads the local source file itself.

When the source file is on this machine and its one destination's writer reads local
files (:attr:`~streamflow_data.connectors.base.Writer.reads_local_files`: the SSH writer,
whose ``ssh`` process reads them), the file goes to that writer as ranges of consecutive
chunks, as many ranges at once as the file's chunks may be. Its bytes never pass through this
process, which would otherwise read, copy and write every one of them again. A range is
read here once meanwhile, for the CRC32C the writer reports and the commit verifies. A
transfer to several destinations keeps the blocks, so that the file is read once for all.

A range spans up to :data:`RANGE_SIZE` bytes: the SSH writer spends a session (a process
at each end) per range, which measured 30% slower at 64 MiB than at 256 MiB per session
for a 1 GiB upload. When the ranges would go one at a time (the connectors want one
stream per file), the whole file is one range. The writer reports progress within a range.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from dataclasses import dataclass

from streamflow_data.checksum import crc32c_combine, crc32c_of_file
from streamflow_data.connectors.base import Writer
from streamflow_data.transfer.context import Destination, RunContext, source_changed
from streamflow_data.transfer.state import ChunkState

__all__ = ["RANGE_SIZE", "LocalRanges"]

RANGE_SIZE = 256 * 1024 * 1024
"""Bytes handed to the writer at once, in whole chunks (one chunk when chunks are larger)."""


@dataclass(slots=True)
class LocalRanges:
    """The chunks of one local file for one destination whose writer reads them."""

    context: RunContext
    relpath: str
    path: str
    """The source file's local path."""
    chunks: list[tuple[int, int]]
    """(start, length) of each chunk."""
    crcs: list[int]
    """The CRC32C of each chunk, filled in as they are read."""
    wrote: Callable[[Destination, int, float], None]
    """Told of bytes written: their destination, number, and when their writing began."""

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
        destination: Destination,
        writer: Writer,
        parallel: int,
        failures: dict[Destination, Exception],
    ) -> None:
        """Write every range, ``parallel`` at once; the first failure is recorded in
        ``failures``, and the ranges not started yet are skipped."""
        limit = asyncio.Semaphore(parallel)
        async with asyncio.TaskGroup() as group:
            for numbers in self.ranges(parallel):
                group.create_task(self._range(destination, writer, numbers, limit, failures))

    async def _range(
        self,
        destination: Destination,
        writer: Writer,
        numbers: range,
        limit: asyncio.Semaphore,
        failures: dict[Destination, Exception],
    ) -> None:
        start = self.chunks[numbers[0]][0]
        size = sum(self.chunks[number][1] for number in numbers)
        async with limit:
            if destination in failures:
                return
            self._mark(destination, numbers, ChunkState.RUNNING)
            since = time.monotonic()

            def progress(moved: int) -> None:
                nonlocal since
                self.wrote(destination, moved, since)
                since = time.monotonic()

            crc = asyncio.create_task(self._checksum(numbers))
            try:
                async with self.context.sessions.slot(destination.location):
                    await writer.write_local(start, self.path, size, crc, progress)
                await crc  # the writer may not have needed it (a failure it did not raise)
            except BaseException as exc:
                crc.cancel()
                await asyncio.wait([crc])
                self._mark(destination, numbers, ChunkState.ERRORED)
                if not isinstance(exc, Exception):  # cancelled: the thread is done first
                    raise
                failures.setdefault(destination, exc)
                return
            self._mark(destination, numbers, ChunkState.FINISHED)

    def _mark(self, destination: Destination, numbers: range, state: ChunkState) -> None:
        for number in numbers:
            self.context.chunks[(self.relpath, number, destination.index)] = state

    async def _checksum(self, numbers: range) -> int:
        """The CRC32C of the chunks ``numbers``, each read in a worker thread; the source's
        error if the file no longer holds them."""
        source = self.context.source.location
        value = 0
        for number in numbers:
            start, length = self.chunks[number]
            started = time.monotonic()
            done, crc = await asyncio.to_thread(_range_crc32c, self.path, start, length)
            self.context.stats.read(source, done, time.monotonic() - started)
            if done != length:
                raise source_changed(source, self.path, start + length, start + done)
            self.crcs[number] = crc
            value = crc32c_combine(value, crc, length) if number != numbers[0] else crc
        return value


def _range_crc32c(path: str, start: int, length: int) -> tuple[int, int]:
    fd = os.open(path, os.O_RDONLY)
    try:
        return crc32c_of_file(fd, start, length)
    finally:
        os.close(fd)
