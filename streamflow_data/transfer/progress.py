"""Turning the counters of a running transfer into progress snapshots for listeners."""

from __future__ import annotations

import collections
import logging
import time
from collections.abc import Sequence

from streamflow_data.model import ExecutionLocation, Verification
from streamflow_data.transfer.events import (
    DestinationProgress,
    TransferListener,
    TransferProgress,
    healthy,
)
from streamflow_data.transfer.state import ChunkState, FileState, StateManager

__all__ = ["ProgressTracker"]

logger = logging.getLogger(__name__)

_INTERVAL = 0.1  # seconds between two snapshots, except the first and the last
_WINDOW = 2.0  # seconds of history behind current_rate


class ProgressTracker:
    """Counts files and bytes per destination and sends throttled snapshots."""

    def __init__(
        self,
        listeners: Sequence[TransferListener],
        source: ExecutionLocation,
        src_path: str,
        destinations: Sequence[tuple[ExecutionLocation, str]],
        files_total: int,
        bytes_total: int,
        file_states: StateManager[tuple[str, int], FileState],
        chunk_states: StateManager[tuple[str, int, int], ChunkState],
    ) -> None:
        self._listeners = listeners
        self._file_states = file_states
        self._chunk_states = chunk_states
        self._source = source
        self._src_path = src_path
        self._destinations = list(destinations)
        self._files_total = files_total
        self._bytes_total = bytes_total
        self._files_done = [0] * len(destinations)
        self._files_failed = [0] * len(destinations)
        self._bytes_done = [0] * len(destinations)
        self._files_skipped = [0] * len(destinations)
        self._bytes_skipped = [0] * len(destinations)
        self._verification: list[Verification | None] = [None] * len(destinations)
        self.transfer_id: int | None = None
        self._started = time.monotonic()
        self._last_sent = float("-inf")
        self._history: collections.deque[tuple[float, int]] = collections.deque()

    def add_bytes(self, destination: int, size: int) -> None:
        """``size`` more bytes written at a destination (negative: a retry starts over)."""
        self._bytes_done[destination] += size
        self._send(finished=False, force=False)

    def file_done(self, destination: int) -> None:
        """A file is verified and published at a destination."""
        self._files_done[destination] += 1
        self._send(finished=False, force=False)

    def skip(self, destination: int, files: int, size: int) -> None:
        """An earlier run had already written ``files`` files and ``size`` bytes there."""
        self._files_skipped[destination] += files
        self._bytes_skipped[destination] += size
        self._files_done[destination] += files
        self._bytes_done[destination] += size

    def files_done(self, destination: int, count: int, size: int, kind: Verification) -> None:
        """``count`` files of ``size`` bytes in all (a batch's) were written, checked as
        ``kind`` says and published at a destination."""
        self._files_done[destination] += count
        self._bytes_done[destination] += size
        self.verified(destination, kind)
        self._send(finished=False, force=False)

    def verified(self, destination: int, kind: Verification) -> None:
        """A file was copied to a destination and checked as ``kind`` says."""
        known = self._verification[destination]
        self._verification[destination] = kind if known is None else known.weakest(kind)

    @property
    def verifications(self) -> tuple[Verification | None, ...]:
        """The weakest check of the copies at each destination so far (None: none)."""
        return tuple(self._verification)

    def verified_end_to_end(self, destination: int) -> None:
        """Every file copied there was hashed where it is stored and matched its source."""
        if self._verification[destination] is not None:
            self._verification[destination] = Verification.STORED

    def file_failed(self, destination: int) -> None:
        """A file failed for good at a destination."""
        self._files_failed[destination] += 1

    def start(self) -> None:
        """Send the first snapshot."""
        self._send(finished=False, force=True)

    def finish(self) -> None:
        """Send the last snapshot."""
        self._send(finished=True, force=True)

    def _send(self, finished: bool, force: bool) -> None:
        if not self._listeners:
            return
        now = time.monotonic()
        if not force and now - self._last_sent < _INTERVAL:
            return
        self._last_sent = now
        destinations = tuple(
            DestinationProgress(location, path, *counts)
            for (location, path), *counts in zip(
                self._destinations,
                self._files_done,
                self._files_failed,
                self._bytes_done,
                self._files_skipped,
                self._bytes_skipped,
                self._verification,
                strict=True,
            )
        )
        slowest = min((d.bytes_done for d in healthy(destinations)), default=0)
        self._history.append((now, slowest))
        while len(self._history) > 2 and now - self._history[0][0] > _WINDOW:
            self._history.popleft()
        then, before = self._history[0]
        rate = (slowest - before) / (now - then) if now > then else 0.0
        snapshot = TransferProgress(
            source=self._source,
            src_path=self._src_path,
            destinations=destinations,
            files_total=self._files_total,
            bytes_total=self._bytes_total,
            elapsed=now - self._started,
            current_rate=rate,
            finished=finished,
            file_states=self._file_states.counts(),
            chunk_states=self._chunk_states.counts(),
            transfer_id=self.transfer_id,
        )
        for listener in self._listeners:
            try:
                listener(snapshot)
            except Exception:
                logger.exception("transfer listener %r failed", listener)
