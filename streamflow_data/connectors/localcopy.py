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

from dataclasses import dataclass
from typing import Protocol

__all__ = ["CopyEvents", "LocalFile"]


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

    def chunks(self) -> list[tuple[int, int]]:
        """(start, length) of each chunk, in order; one empty chunk for an empty file."""
        if self.size == 0:
            return [(0, 0)]
        return [
            (start, min(self.chunk_size, self.size - start))
            for start in range(0, self.size, self.chunk_size)
        ]


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
