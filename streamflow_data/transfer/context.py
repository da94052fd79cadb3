"""What the files of one transfer share: its endpoints, settings, pool, limits and records."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field

from streamflow_data.config import TransferSettings
from streamflow_data.connectors.base import Connector
from streamflow_data.errors import SourceChangedError
from streamflow_data.model import ExecutionLocation
from streamflow_data.transfer.blocks import BlockPool
from streamflow_data.transfer.journal import PriorRun, RunJournal
from streamflow_data.transfer.plan import join
from streamflow_data.transfer.progress import ProgressTracker
from streamflow_data.transfer.state import ChunkState, FileState, StateManager
from streamflow_data.transfer.stats import Statistics

__all__ = [
    "CopyTarget",
    "Destination",
    "DestinationState",
    "Endpoint",
    "RunContext",
    "source_changed",
]


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A connector and one of its locations."""

    connector: Connector
    location: ExecutionLocation


@dataclass(frozen=True, slots=True)
class CopyTarget:
    """Where a transfer copies to: one destination as its caller names it."""

    connector: Connector
    location: ExecutionLocation
    path: str
    """Where the transfer's source lands there (each destination has its own)."""
    server_copy: bool = False
    """Copy file by file within the location instead of streaming through us."""
    admit: Callable[[int], Awaitable[None]] | None = None
    """Called with the transfer's total bytes before anything is written there; it may
    wait for room or raise (the local replica cache's budget)."""


@dataclass(slots=True)
class DestinationState:
    """How one destination of a running transfer stands: the engine's to change."""

    root: str
    """Where the transfer writes there: the destination path, or a hidden staging
    directory renamed to it at the end (see ``Capabilities.atomic_directories``)."""
    staged: bool = False
    """``root`` is a staging directory: files go in place, without temporaries."""
    created_root: bool = False
    """The transfer created the destination directory, so a failure removes it."""
    error: Exception | None = None
    """Why this destination failed, once a file failed there for good."""


@dataclass(frozen=True, slots=True, eq=False)
class Destination:
    """One destination of a running transfer: what it is, fixed, and its
    :class:`DestinationState`."""

    connector: Connector
    location: ExecutionLocation
    path: str
    index: int
    """Its position among the transfer's destinations."""
    server_copy: bool
    admit: Callable[[int], Awaitable[None]] | None
    state: DestinationState

    @classmethod
    def of(cls, target: CopyTarget, index: int) -> Destination:
        """The ``index``-th destination of a transfer, writing at its path."""
        return cls(
            target.connector,
            target.location,
            target.path,
            index,
            target.server_copy,
            target.admit,
            DestinationState(target.path),
        )

    @property
    def error(self) -> Exception | None:
        """Why this destination failed, if it did (see :meth:`fail`)."""
        return self.state.error

    @property
    def root(self) -> str:
        """See :attr:`DestinationState.root`."""
        return self.state.root

    @property
    def staged(self) -> bool:
        """See :attr:`DestinationState.staged`."""
        return self.state.staged

    def fail(self, error: Exception) -> None:
        """Record why this destination failed; the first reason stays."""
        if self.state.error is None:
            self.state.error = error

    def target(self, relpath: str) -> str:
        """Where the file at ``relpath`` of the transfer is written here."""
        return join(self.state.root, relpath)


@dataclass(slots=True)
class RunContext:
    """What the files of one transfer share."""

    source: Endpoint
    settings: TransferSettings
    pool: BlockPool
    stats: Statistics
    progress: ProgressTracker
    chunk_slots: asyncio.Semaphore
    """Chunks of this transfer in flight."""
    batch_slots: asyncio.Semaphore
    """Batches of small files of this transfer being read (the source connector's
    ``batch_streams``, ``max_concurrent_files`` at most)."""
    root_is_directory: bool
    files: StateManager[tuple[str, int], FileState]
    """State of each (file, destination index)."""
    chunks: StateManager[tuple[str, int, int], ChunkState]
    """State of each (file, chunk number, destination index)."""
    journal: RunJournal
    """Where the transfer's progress is recorded for a later resume."""
    prior: PriorRun
    """What an earlier run of the same transfer left behind."""
    write_slots: dict[int, asyncio.Semaphore] = field(default_factory=dict)
    """Batches of small files being written at each destination (by its index) whose
    connector bounds them (see :meth:`batch_write`)."""

    def batch_write(self, destination: Destination) -> AbstractAsyncContextManager[None]:
        """Held while a batch of small files is written to ``destination``: as many at
        once as its connector's ``batch_streams`` says are worth it, asked at the first
        batch (the location is connected by then); no bound when it has no say."""
        slots = self.write_slots.get(destination.index)
        if slots is None:
            streams = destination.connector.batch_streams(destination.location)
            if streams is None:
                return contextlib.nullcontext()
            slots = self.write_slots[destination.index] = asyncio.Semaphore(streams)
        return slots


def source_changed(
    location: ExecutionLocation, path: str, planned: int, found: int
) -> SourceChangedError:
    """The error for a source file whose size is no longer the planned one (retryable)."""
    return SourceChangedError(location, path, f"{planned} bytes planned, {found} read")
