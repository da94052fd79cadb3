"""A file of this machine copied to or from a location by the connector's own route.

The engine moves a file as blocks read and written through this process. Where the
storage has a better route for a file of this machine's disk (the shell connector's
transports hand the file to a process that reads or writes it itself), its connector
overrides :meth:`~streamflow_data.connectors.base.Connector.put_file` or
:meth:`~streamflow_data.connectors.base.Connector.get_file`: the engine hands it the file
as a :class:`LocalFile`, and hears from it through :class:`CopyEvents` what the block path
would have told it (progress, statistics, and the chunks to journal for a resume).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from streamflow_data.checksum import crc32c_of_file

__all__ = ["CopyEvents", "LocalFile", "SourceChecksums", "range_crc32c"]


@dataclass(frozen=True, slots=True)
class LocalFile:
    """A file of this machine, and how the engine cuts it."""

    path: str
    """The file: the source of a put, or the destination's (existing, temporary) file of a
    get, filled at the same offsets as the location's file."""
    size: int
    """The bytes to move: the source's size as planned (a get of fewer is a changed
    source)."""
    chunk_size: int
    """The engine's unit of progress on disk: chunk ``n`` spans ``chunk_size`` bytes from
    ``n * chunk_size``; :meth:`CopyEvents.held` names chunks by that number."""
    streams: int
    """Parts of the file the engine would move at once (see
    :meth:`~streamflow_data.connectors.base.Connector.chunk_streams`)."""
    checksums: SourceChecksums | None = None
    """The source's chunk checksums, shared by the routes that put it to several
    destinations at once (None: a route computes its own)."""

    def chunks(self) -> list[tuple[int, int]]:
        """(start, length) of each chunk, in order; one empty chunk for an empty file."""
        if self.size == 0:
            return [(0, 0)]
        return [
            (start, min(self.chunk_size, self.size - start))
            for start in range(0, self.size, self.chunk_size)
        ]


class SourceChecksums:
    """The CRC32C of each chunk of a local source file, read once for every route that
    puts the file (one per destination), whichever asks first: each chunk is read when
    the first route needs its checksum, in a worker thread."""

    def __init__(
        self, path: str, chunks: list[tuple[int, int]], read: Callable[[int, float], None]
    ) -> None:
        self._path = path
        self._chunks = chunks
        self._read = read
        self._known: dict[int, tuple[int, int]] = {}
        self._reading: dict[int, asyncio.Lock] = {}

    async def of(self, number: int) -> tuple[int, int]:
        """The bytes of chunk ``number`` read (fewer when the file ended early) and their
        CRC32C; ``OSError`` if the file cannot be read. The reading is told to ``read``
        (statistics) once."""
        async with self._reading.setdefault(number, asyncio.Lock()):
            known = self._known.get(number)
            if known is None:
                start, length = self._chunks[number]
                started = time.monotonic()
                known = await asyncio.to_thread(range_crc32c, self._path, start, length)
                self._known[number] = known
                self._read(known[0], time.monotonic() - started)
            return known


def range_crc32c(path: str, start: int, length: int) -> tuple[int, int]:
    """The bytes of ``path`` read from ``start`` (at most ``length``) and their CRC32C.
    Blocking."""
    fd = os.open(path, os.O_RDONLY)
    try:
        return crc32c_of_file(fd, start, length)
    finally:
        os.close(fd)


class CopyEvents(Protocol):
    """What a connector's own route tells the engine, as the block path would."""

    @property
    def journaled(self) -> bool:
        """Whether :meth:`held` is listened to: the transfer keeps a journal to resume
        from. A route may skip the work of knowing which chunks are held when not."""

    def moved(self, size: int, started: float) -> None:
        """``size`` more bytes are at the destination; their moving began at ``started``
        (:func:`time.monotonic`). All the file's bytes, once each, by the end."""

    def read(self, size: int, seconds: float) -> None:
        """``size`` bytes of the source were read, taking ``seconds`` (statistics)."""

    def recovered(self, error: Exception) -> None:
        """The route met ``error`` and went on another way (statistics count it)."""

    def held(self, number: int, crc32c: int) -> None:
        """The destination holds chunk ``number`` whole, whose bytes have this CRC32C: an
        interrupted transfer continues after it. Tell only what the storage surely holds
        (a chunk told too early fails the continued file's check, which starts over)."""
