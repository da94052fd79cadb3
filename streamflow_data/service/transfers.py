"""The transfers a service runs: submitted, followed, cancelled, and kept for a while
after they end so that their submitters can read the outcome."""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from streamflow_data.api.models import TransferState
from streamflow_data.errors import (
    StreamFlowDataError,
    TransferCancelledError,
    TransferError,
    TransferFailure,
    UnknownTransferError,
)
from streamflow_data.manager import DefaultDataManager
from streamflow_data.model import DataLocation, ExecutionLocation
from streamflow_data.service.hub import ChangeHub
from streamflow_data.transfer.events import TransferProgress

__all__ = ["Submitted", "TransferBoard"]

logger = logging.getLogger(__name__)

KEEP_FINISHED = 1000
"""Ended transfers the board remembers (the oldest are forgotten first)."""


@dataclass(eq=False)
class Submitted:
    """One transfer submitted to the service, and how it is going."""

    id: int
    source: DataLocation
    targets: Sequence[tuple[ExecutionLocation, str]]
    writable: bool
    links: bool
    submitted: float = field(default_factory=time.time)
    state: TransferState = "running"
    progress: TransferProgress | None = None
    failures: list[TransferFailure] = field(default_factory=list)
    error: BaseException | None = None
    finished: float | None = None
    seq: int | None = None
    """The graph's change number once the outcome was recorded."""
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    """Set, and replaced by a fresh event, at each change: followers wait on it."""
    task: asyncio.Task[None] | None = None
    cancel_requested: bool = False

    @property
    def done(self) -> bool:
        return self.state not in ("queued", "running")

    def update(self, progress: TransferProgress) -> None:
        """A listener of this transfer's progress."""
        self.progress = progress
        self.notify()

    def notify(self) -> None:
        """Wake every follower."""
        changed, self.changed = self.changed, asyncio.Event()
        changed.set()


class TransferBoard:
    """Runs each submitted transfer as a task of ``tasks`` (the service's task group)."""

    def __init__(
        self, manager: DefaultDataManager, hub: ChangeHub, tasks: asyncio.TaskGroup
    ) -> None:
        self._manager = manager
        self._hub = hub
        self._tasks = tasks
        self._transfers: dict[int, Submitted] = {}
        self._ids = itertools.count(1)

    async def submit(
        self,
        source: DataLocation,
        targets: Sequence[tuple[ExecutionLocation, str]],
        writable: bool,
        links: bool,
    ) -> Submitted:
        """Start a transfer; it runs until it ends or is cancelled, whatever becomes of
        the request that submitted it."""
        submitted = Submitted(next(self._ids), source, targets, writable, links)
        self._hold(submitted)
        submitted.task = self._tasks.create_task(self._run(submitted))
        return submitted

    def _hold(self, submitted: Submitted) -> None:
        self._transfers[submitted.id] = submitted
        self._forget_old()

    async def _run(self, submitted: Submitted) -> None:
        try:
            await self._transfer(submitted)
        except asyncio.CancelledError:
            if not submitted.cancel_requested:
                raise  # the service is stopping
        except Exception:  # the outcome is on the board, for its submitter to read
            pass

    async def _transfer(self, submitted: Submitted) -> None:
        """Run ``submitted`` with the manager, recording how it ends; raises as it ends."""
        state: TransferState = "failed"
        submitted.state = "running"
        submitted.notify()
        try:
            await self._manager.transfer_to(
                submitted.source.location,
                submitted.source.path,
                submitted.targets,
                submitted.writable,
                links=submitted.links,
                listeners=[submitted.update],
            )
            state = "done"
        except TransferError as exc:
            submitted.failures = list(exc.failures)
            raise
        except TransferCancelledError as exc:
            state, submitted.error = "suspended", exc
            raise
        except asyncio.CancelledError:
            state = "cancelled"
            raise
        except Exception as exc:
            if not isinstance(exc, StreamFlowDataError):
                logger.exception("transfer %d failed unexpectedly", submitted.id)
            submitted.error = exc
            raise
        finally:
            submitted.state, submitted.finished = state, time.time()
            submitted.seq = self._hub.seq
            submitted.notify()

    async def get(self, transfer: int) -> Submitted:
        """The transfer of that id; :class:`UnknownTransferError` if there is none (or it
        ended long ago and was forgotten)."""
        found = self._transfers.get(transfer)
        if found is None:
            raise UnknownTransferError(transfer)
        return found

    def __iter__(self) -> Iterator[Submitted]:
        """The transfers held, newest first."""
        return reversed(list(self._transfers.values()))

    async def cancel(self, transfer: int) -> Submitted:
        """Stop a transfer (what it wrote is kept for a resume); one that ended already
        is left as it is."""
        submitted = await self.get(transfer)
        self._stop(submitted)
        return submitted

    def _stop(self, submitted: Submitted) -> None:
        if not submitted.done and submitted.task is not None:
            submitted.cancel_requested = True
            submitted.task.cancel()

    def stop_all(self) -> None:
        """Cancel every transfer running here (the service is going away)."""
        for submitted in list(self._transfers.values()):
            self._stop(submitted)

    def counts(self) -> dict[str, int]:
        """How many transfers the board holds in each state."""
        counts = dict.fromkeys(("queued", "running", "done", "failed", "cancelled", "suspended"), 0)
        for submitted in self._transfers.values():
            counts[submitted.state] += 1
        return counts

    def _forget_old(self) -> None:
        ended = [t for t in self._transfers.values() if t.done]
        for submitted in ended[: max(0, len(ended) - KEEP_FINISHED)]:
            del self._transfers[submitted.id]
