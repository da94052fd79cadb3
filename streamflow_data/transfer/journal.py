"""What the engine records of a running transfer, so that a rerun moves only what is missing.

The engine reports to a :class:`RunJournal` as it goes: the planned files, the staging
directory of each destination, the resume token of each partly written file, how far
each chunk has been written, and every file state. When the same transfer is started
again, :meth:`RunJournal.start` hands back what an earlier run left behind
(:class:`PriorRun`): files already valid at a destination are checked and skipped, and
partly written files continue from their last recorded block.

The engine only calls this interface; :mod:`streamflow_data.catalog` persists it in
SQLite. :class:`NullJournal` remembers nothing, for managers without a catalog.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass, field

from streamflow_data.connectors.base import WalkEntry
from streamflow_data.model import Verification
from streamflow_data.transfer.state import FileState

__all__ = ["ChunkMark", "NullJournal", "PriorCopy", "PriorRun", "RunJournal"]


@dataclass(frozen=True, slots=True)
class ChunkMark:
    """How much of a chunk is written at a destination: its first ``done`` bytes, whose
    CRC32C is ``crc``."""

    done: int
    crc: int


@dataclass(slots=True)
class PriorCopy:
    """What an earlier run left of one file at one destination."""

    state: FileState
    token: str | None = None
    """The resume token of its partly written file (see ``Writer.resume_token``)."""
    chunks: dict[int, ChunkMark] = field(default_factory=dict)
    """Chunk number to how much of it was written."""


@dataclass(slots=True)
class PriorRun:
    """What an earlier, unfinished or finished, run of the same transfer left behind.

    Only files whose source size and modification time are unchanged appear in
    ``files``; the partly written files of changed ones are listed in ``stale`` so that
    the engine discards them.
    """

    roots: dict[int, str] = field(default_factory=dict)
    """Staging directory per destination index, for a tree not yet published."""
    files: dict[tuple[str, int], PriorCopy] = field(default_factory=dict)
    """(relpath, destination index) to what is there."""
    stale: list[tuple[str, int, str]] = field(default_factory=list)
    """(relpath, destination index, resume token) of partial files to discard."""


class RunJournal(abc.ABC):
    """The record of one transfer, kept while it runs."""

    resumable = True
    """Whether partial files are worth keeping for a later run."""

    transfer_id: int | None = None
    """The identifier of the transfer in the journal, when it has one."""

    @abc.abstractmethod
    async def start(self, files: Sequence[WalkEntry], chunk_size: int, block_size: int) -> PriorRun:
        """Record the planned files; return what an earlier run left that still applies.

        Chunk marks are only returned when the chunk and block sizes are the ones the
        earlier run used.
        """

    @abc.abstractmethod
    def root(self, index: int, root: str, staged: bool) -> None:
        """Where destination ``index`` writes the tree (a staging directory or the path)."""

    @abc.abstractmethod
    def file_state(self, key: tuple[str, int], state: FileState) -> None:
        """File ``relpath`` is now in ``state`` at destination ``index`` (``key``)."""

    @abc.abstractmethod
    def token(self, relpath: str, index: int, token: str | None) -> None:
        """The resume token of the file being written (None: nothing to resume)."""

    @abc.abstractmethod
    def chunk(self, relpath: str, index: int, number: int, mark: ChunkMark) -> None:
        """How much of chunk ``number`` is written at destination ``index``."""

    @abc.abstractmethod
    def checked(self, index: int, kind: Verification | None) -> None:
        """What the check of this run's copies at destination ``index`` proved (None:
        nothing was copied there); recorded when the run finishes."""

    @abc.abstractmethod
    async def flush(self) -> None:
        """Make everything recorded so far durable."""

    @abc.abstractmethod
    async def finish(self, outcome: str) -> None:
        """The transfer ended: ``done``, ``failed`` or ``cancelled``."""


class NullJournal(RunJournal):
    """Remembers nothing: every run starts from zero."""

    resumable = False

    async def start(self, files: Sequence[WalkEntry], chunk_size: int, block_size: int) -> PriorRun:
        return PriorRun()

    def root(self, index: int, root: str, staged: bool) -> None:
        pass

    def file_state(self, key: tuple[str, int], state: FileState) -> None:
        pass

    def token(self, relpath: str, index: int, token: str | None) -> None:
        pass

    def chunk(self, relpath: str, index: int, number: int, mark: ChunkMark) -> None:
        pass

    def checked(self, index: int, kind: Verification | None) -> None:
        pass

    async def flush(self) -> None:
        pass

    async def finish(self, outcome: str) -> None:
        pass
