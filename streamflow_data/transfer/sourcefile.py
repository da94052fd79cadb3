"""The source file of one copy: its failures, and whether it changed while it was read.

A copy of a file that changed while it was read would match neither version, so every
failure of the source fails the whole attempt (:class:`SourceError`, for every
destination), and a file found changed after its last read is never published.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from streamflow_data.connectors.base import FileStat, Reader
from streamflow_data.errors import SourceChangedError
from streamflow_data.transfer.context import RunContext, source_changed

__all__ = ["SourceError", "SourceFile"]


class SourceError(Exception):
    """Wraps an error of the source so that it fails every destination of the attempt."""

    def __init__(self, cause: Exception) -> None:
        super().__init__(str(cause))
        self.cause = cause


class SourceFile:
    """The file at ``path`` of the run's source, as planned (``stat``)."""

    def __init__(self, context: RunContext, path: str, stat: FileStat) -> None:
        self.context = context
        self.path = path
        self.stat = stat

    @contextlib.asynccontextmanager
    async def reading(self) -> AsyncIterator[None]:
        """Errors inside are the source's."""
        try:
            yield
        except Exception as exc:
            raise SourceError(exc) from exc

    def check_size(self, size: int) -> None:
        """Raise the source's error if ``size`` is not the planned size."""
        if size != self.stat.size:
            location = self.context.source.location
            raise SourceError(source_changed(location, self.path, self.stat.size, size))

    async def change(self, reader: Reader, read: bool = True) -> SourceChangedError | None:
        """The error for a source no longer the file planned, if it is not: resized since
        the plan, or changed since the reader opened it. With ``read``, a reader that
        cannot tell its size when opened is asked for a byte past the planned end (over
        SSH that was one more remote command per file)."""
        async with self.reading():
            why = await reader.changed()
            opened = reader.opened_size
            if why is None and opened is not None and opened != self.stat.size:
                why = f"its size went from {self.stat.size} to {opened} bytes"
            elif why is None and opened is None and read and await reader.read(self.stat.size, 1):
                why = "it grew while it was read"
        location = self.context.source.location
        return None if why is None else SourceChangedError(location, self.path, why)
