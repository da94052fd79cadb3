"""Keeping a replica graph current with a catalog other managers write too.

Managers sharing a catalog (a file on one machine, a PostgreSQL database across several)
each load the graph when they open it; a :class:`Follower` then reads, every
``follow_interval`` seconds, the changes the others have written since, and makes them in
this manager's graph, in the log's order, telling ``observer`` (a service's subscribers)
each one. Rows carry the ``origin`` of the opening that wrote them; a manager's own are
skipped (its graph made them already). A manager that compacts the log rewrites the rows
up to that point as a snapshot of its graph; a follower that had not read them yet reads
the snapshot instead, which makes again what it already holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from streamflow_data.catalog.replicas import ReplicaLog
from streamflow_data.changes import GraphObserver, apply_change
from streamflow_data.errors import CatalogError
from streamflow_data.mapper import RemotePathMapper

__all__ = ["Follower"]

logger = logging.getLogger(__name__)


class Follower:
    """Applies other managers' changes from ``log`` to ``mapper``, every ``interval`` s."""

    def __init__(
        self,
        log: ReplicaLog,
        mapper: RemotePathMapper,
        observer: GraphObserver,
        interval: float,
    ) -> None:
        self._log = log
        self._mapper = mapper
        self._observer = observer
        self._task = asyncio.create_task(self._run(interval), name="catalog follower")

    async def _run(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            await self.catch_up()

    async def catch_up(self) -> int:
        """Make the changes written since the last look now; how many. A catalog that
        cannot be read is logged and tried again at the next look."""
        try:
            changes = await self._log.since()
        except CatalogError as exc:
            logger.warning("cannot read other managers' changes: %s", exc)
            return 0
        for change in changes:
            apply_change(self._mapper, change)
            self._observer(change)
        return len(changes)

    async def stop(self) -> None:
        """Stop looking."""
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
