"""The transfers of a service in queue mode: submitted to the catalog's queue, which every
service sharing the catalog in queue mode drains (see :mod:`...catalog.queue`).

A transfer this service runs is followed as any other (its progress, its outcome); one
queued, or running on another service, is followed through its row in the queue, read
every :data:`REFRESH` seconds while someone follows it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

from streamflow_data.catalog.queue import QueuedTransfer, TransferQueue
from streamflow_data.errors import StreamFlowDataError
from streamflow_data.manager import DefaultDataManager
from streamflow_data.manager.naming import resolve_targets
from streamflow_data.manager.worker import QueueWorker
from streamflow_data.model import DataLocation, ExecutionLocation
from streamflow_data.service.hub import ChangeHub
from streamflow_data.service.transfers import Submitted, TransferBoard

__all__ = ["REFRESH", "QueuedBoard"]

REFRESH = 0.5
"""Seconds between two reads of the queue rows of transfers running elsewhere."""


class QueuedBoard(TransferBoard):
    """A :class:`TransferBoard` whose transfers go through the catalog's queue; its
    worker (``concurrency`` transfers at once) runs those this service claims."""

    def __init__(
        self,
        manager: DefaultDataManager,
        hub: ChangeHub,
        tasks: asyncio.TaskGroup,
        queue: TransferQueue,
        concurrency: int,
    ) -> None:
        super().__init__(manager, hub, tasks)
        self._queue = queue
        self.worker = QueueWorker(manager, concurrency=concurrency, execute=self._execute)
        self._background = [
            tasks.create_task(self.worker.run()),
            tasks.create_task(self._refresh()),
        ]

    async def submit(
        self,
        source: DataLocation,
        targets: Sequence[tuple[ExecutionLocation, str]],
        writable: bool,
        links: bool,
    ) -> Submitted:
        number = await self._queue.submit(
            QueuedTransfer.of((source.location, source.path), targets, writable, links)
        )
        self.worker.wake()
        submitted = Submitted(number, source, targets, writable, links, state="queued")
        self._hold(submitted)
        return submitted

    async def get(self, transfer: int) -> Submitted:
        try:
            return await super().get(transfer)
        except StreamFlowDataError:
            row = await self._queue.get(transfer)  # submitted through another service
        submitted = self._submitted(row)
        self._follow(submitted, row)
        self._hold(submitted)
        return submitted

    def stop_all(self) -> None:
        """Stop taking work from the queue; the transfers running here go back to it."""
        for task in self._background:
            task.cancel()
        super().stop_all()

    async def cancel(self, transfer: int) -> Submitted:
        submitted = await self.get(transfer)
        if not submitted.done:
            self._follow(submitted, await self._queue.cancel(transfer))
        self._stop(submitted)
        return submitted

    def _submitted(self, row: QueuedTransfer) -> Submitted:
        """A board entry for a queue row (its source as this service would name it)."""
        manager = self._manager
        [(where, path)] = resolve_targets(manager, [row.source], served=False)
        source = manager.mapper.resolve(where, path) or DataLocation(where, path, path)
        targets = resolve_targets(manager, row.targets, served=False)
        submitted = Submitted(row.id, source, targets, row.writable, row.links)
        submitted.submitted = row.submitted
        return submitted

    @staticmethod
    def _follow(submitted: Submitted, row: QueuedTransfer) -> None:
        """Bring an entry not running here up to its row."""
        if submitted.task is not None or row.state == submitted.state:
            return
        submitted.state = row.state
        if submitted.done:
            submitted.finished = row.updated
            if row.error is not None:
                submitted.error = StreamFlowDataError(row.error)
        submitted.notify()

    async def _refresh(self) -> None:
        while True:
            await asyncio.sleep(REFRESH)
            away = {t.id: t for t in self._transfers.values() if t.task is None and not t.done}
            try:
                rows = await self._queue.some(list(away))
            except StreamFlowDataError:
                continue  # the catalog is away for a moment: read again next time
            for row in rows:
                self._follow(away[row.id], row)

    async def _execute(
        self,
        claimed: QueuedTransfer,
        source: DataLocation,
        targets: Sequence[tuple[ExecutionLocation, str]],
    ) -> None:
        """The worker's way of running a transfer: on this board, followed here."""
        submitted = self._transfers.get(claimed.id)
        if submitted is None or submitted.done:
            submitted = Submitted(claimed.id, source, targets, claimed.writable, claimed.links)
            submitted.submitted = claimed.submitted or time.time()
            self._hold(submitted)
        submitted.task = asyncio.current_task()
        try:
            await self._transfer(submitted)
        finally:
            submitted.task = None
