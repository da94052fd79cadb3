"""Progress of transfers, reported to listeners the caller registers."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from streamflow_data.model import ExecutionLocation, Verification
from streamflow_data.transfer.state import ChunkState, FileState

__all__ = ["DestinationProgress", "TransferListener", "TransferProgress", "healthy"]


@dataclass(frozen=True, slots=True)
class DestinationProgress:
    """How far one destination of a transfer has got."""

    location: ExecutionLocation
    path: str
    """Where the source lands there."""
    files_done: int
    """Files written, verified and published there."""
    files_failed: int
    """Files that failed there for good."""
    bytes_done: int
    """Bytes written there, counting files in flight (a retried file starts again)."""
    files_skipped: int = 0
    """Files of ``files_done`` found already valid there by an earlier run of the transfer."""
    bytes_skipped: int = 0
    """Bytes of ``bytes_done`` that an earlier run had written (skipped files, resumed
    chunks): they were not moved again."""
    verification: Verification | None = None
    """The weakest check the files copied there in this run got (see
    :class:`~streamflow_data.model.Verification`); None while none is copied."""


def healthy(destinations: Sequence[DestinationProgress]) -> list[DestinationProgress]:
    """The destinations where no file has failed: the ones a transfer's totals follow."""
    return [d for d in destinations if not d.files_failed]


@dataclass(frozen=True, slots=True)
class TransferProgress:
    """A snapshot of one transfer: sent when it starts, as it goes, and when it ends."""

    source: ExecutionLocation
    """Where the data is read from."""
    src_path: str
    destinations: tuple[DestinationProgress, ...]
    """Every destination written by the engine (links and no-op destinations excluded),
    each with its own path."""
    files_total: int
    bytes_total: int
    elapsed: float
    """Seconds since the transfer started."""
    current_rate: float
    """Bytes per second over the last seconds, for the slowest destination."""
    finished: bool
    """True in the last snapshot of the transfer, whether it succeeded or not."""
    file_states: Mapping[FileState, int]
    """How many (file, destination) pairs are in each state."""
    chunk_states: Mapping[ChunkState, int]
    """How many (chunk, destination) pairs of large files are in each state."""
    transfer_id: int | None = None
    """The transfer's identifier in the catalog's journal (None without a catalog)."""

    @property
    def nothing_to_do(self) -> bool:
        """Every file was already valid at every destination: nothing was moved."""
        return all(
            d.files_skipped == self.files_total and d.bytes_skipped == self.bytes_total
            for d in self.destinations
        )

    @property
    def bytes_moved(self) -> int:
        """Bytes actually written during this run, at the destination that wrote least."""
        return min((d.bytes_done - d.bytes_skipped for d in healthy(self.destinations)), default=0)

    @property
    def files_done(self) -> int:
        """Files done at every destination still in the transfer (the slowest one's count)."""
        return min((d.files_done for d in healthy(self.destinations)), default=0)

    @property
    def bytes_done(self) -> int:
        """Bytes done at every destination still in the transfer (the slowest one's count)."""
        return min((d.bytes_done for d in healthy(self.destinations)), default=0)

    @property
    def rate(self) -> float:
        """Average bytes per second since the start."""
        return self.bytes_done / self.elapsed if self.elapsed > 0 else 0.0


TransferListener = Callable[[TransferProgress], None]
"""A callable receiving every :class:`TransferProgress`; it must not block."""
