"""A worker draining the catalog's queue of transfers (see :mod:`..catalog.queue`).

Each service (or any process holding a data manager) sharing a catalog may run one: it
claims queued transfers, at most ``concurrency`` at once, runs each with its manager,
beats for them while they run and records how each ended. A transfer it no longer holds
(cancelled, or taken over by another worker after this one was thought dead) is stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Awaitable, Callable, Sequence

from streamflow_data.catalog.queue import QueuedTransfer, QueueState, TransferQueue
from streamflow_data.errors import StreamFlowDataError, TransferCancelledError, UnknownPathError
from streamflow_data.manager.default import DefaultDataManager
from streamflow_data.manager.naming import resolve_targets, valid_replica
from streamflow_data.model import DataLocation, ExecutionLocation

__all__ = ["Execute", "QueueWorker"]

logger = logging.getLogger(__name__)

Execute = Callable[
    [QueuedTransfer, DataLocation, Sequence[tuple[ExecutionLocation, str]]], Awaitable[None]
]
"""What runs a claimed transfer from its source replica to its targets; it raises what
failed (a :class:`~streamflow_data.errors.TransferError`...)."""


class QueueWorker:
    """Claims transfers from ``manager``'s catalog queue and runs them (with ``execute``,
    by default :meth:`DefaultDataManager.transfer_to`)."""

    def __init__(
        self,
        manager: DefaultDataManager,
        *,
        concurrency: int = 4,
        poll: float = 0.2,
        execute: Execute | None = None,
    ) -> None:
        catalog = manager.catalog
        if catalog is None:
            raise StreamFlowDataError("a queue worker needs its manager's catalog, open")
        self._manager = manager
        self._queue: TransferQueue = catalog.queue
        self._beat_every = catalog.settings.stale_lock_after / 3
        self._concurrency = concurrency
        self._poll = poll
        self._execute = execute or self._transfer
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{os.urandom(4).hex()}"
        """How the queue names this worker."""
        self._running: dict[int, asyncio.Task[None]] = {}
        self._woken = asyncio.Event()

    def wake(self) -> None:
        """Look at the queue now, and often again: work was just submitted. An idle
        worker looks less and less often (up to every 2 s), so a transfer submitted to an
        idle service would otherwise wait that long."""
        self._woken.set()

    def __repr__(self) -> str:
        return f"QueueWorker(owner={self.owner!r}, running={len(self._running)})"

    async def run(self) -> None:
        """Claim and run transfers until cancelled (transfers running then are cancelled:
        their journal keeps what they wrote, and the queue gives them to another worker
        once this one stops beating)."""
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(self._beat())
            slots = asyncio.Semaphore(self._concurrency)
            delay = self._poll
            while True:
                await slots.acquire()
                claimed = await self._claim()
                if claimed is None:
                    slots.release()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._woken.wait(), delay)
                    # An idle queue is looked at less often, until work is submitted.
                    delay = self._poll if self._woken.is_set() else min(delay * 2, 2.0)
                    self._woken.clear()
                    continue
                delay = self._poll
                task = tasks.create_task(self._run(claimed, slots))
                self._running[claimed.id] = task

    async def _claim(self) -> QueuedTransfer | None:
        try:
            return await self._queue.claim(self.owner)
        except StreamFlowDataError as exc:  # the catalog is away: look again later
            logger.warning("cannot claim a queued transfer: %s", exc)
            return None

    async def _run(self, claimed: QueuedTransfer, slots: asyncio.Semaphore) -> None:
        state: QueueState = "failed"
        error: str | None = None
        try:
            source, targets = await self._resolve(claimed)
            await self._execute(claimed, source, targets)
            state = "done"
        except (asyncio.CancelledError, TransferCancelledError):
            # Stopped here (the worker stops, its manager shuts down): given back to the
            # queue for another worker to resume. One cancelled by its submitter or
            # taken over is no longer this worker's: nothing is recorded for it.
            state = "queued"
        except StreamFlowDataError as exc:
            error = str(exc)
        except Exception as exc:
            logger.exception("queued transfer %d failed unexpectedly", claimed.id)
            error = repr(exc)
        finally:
            del self._running[claimed.id]
            slots.release()
            with contextlib.suppress(StreamFlowDataError):
                await asyncio.shield(self._queue.finish(self.owner, claimed.id, state, error))

    async def _resolve(
        self, claimed: QueuedTransfer
    ) -> tuple[DataLocation, list[tuple[ExecutionLocation, str]]]:
        [(where, path)] = resolve_targets(self._manager, [claimed.source])
        source = await valid_replica(self._manager, where, path)
        if source is None:
            raise UnknownPathError(path, where)
        return source, resolve_targets(self._manager, claimed.targets)

    async def _transfer(
        self,
        claimed: QueuedTransfer,
        source: DataLocation,
        targets: Sequence[tuple[ExecutionLocation, str]],
    ) -> None:
        await self._manager.transfer_to(
            source.location, source.path, targets, claimed.writable, links=claimed.links
        )

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(self._beat_every)
            try:
                lost = await self._queue.beat(self.owner, list(self._running))
            except StreamFlowDataError as exc:
                logger.warning("cannot beat for the queued transfers: %s", exc)
                continue
            for number in lost:  # cancelled, or given to another worker
                if (task := self._running.get(number)) is not None:
                    task.cancel()
