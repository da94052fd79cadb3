"""Progress of transfers, reported to listeners the caller registers."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from streamflow_data.model import ExecutionLocation

__all__ = ["TransferListener", "TransferProgress"]


@dataclass(frozen=True, slots=True)
class TransferProgress:
    """A snapshot of one transfer: sent when it starts, after each file, and at the end."""

    source: ExecutionLocation
    """Where the data is read from."""
    src_path: str
    destinations: tuple[ExecutionLocation, ...]
    """Every destination the transfer writes (links and no-op destinations excluded)."""
    dst_path: str
    files_total: int
    files_done: int
    bytes_total: int
    bytes_done: int
    """Source bytes delivered to every destination still in the transfer."""
    elapsed: float
    """Seconds since the transfer started."""
    finished: bool
    """True in the last snapshot of the transfer, whether it succeeded or not."""

    @property
    def rate(self) -> float:
        """Bytes per second so far."""
        return self.bytes_done / self.elapsed if self.elapsed > 0 else 0.0


TransferListener = Callable[[TransferProgress], None]
"""A callable receiving every :class:`TransferProgress`; it must not block."""
