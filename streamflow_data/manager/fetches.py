"""Transfers that fetch a remote source to the local node, and the later transfers of
that source that send the local copy on instead of reading the source again.

A transfer of a remote source with a destination on the local node is a *fetch*. A
second transfer of the same source, with no target on the source's own location, reads
the fetch's copy instead of the source: the source is read once, and the bytes leave from
this node (over an SSH master, the file itself is handed to it).

- If it starts while the fetch is in flight, it waits for the copy. A writable fetch
  returns to its caller only once such readers are done, so that its copy is not changed
  under them; a copy that is not writable joins the source's replica set, which its
  caller does not change.
- If it starts later, it reads the copy if both are still files of the same size and
  modification time (the fetch gave the copy the source's), as rsync judges a file
  unchanged. The last :data:`KEPT` fetched copies are remembered.

Whenever the copy cannot be used, or fails to be read, the transfer reads the source.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import cachetools

from streamflow_data.connectors.base import Connector, FileKind
from streamflow_data.errors import StreamFlowDataError
from streamflow_data.manager.claims import Job, Key, key
from streamflow_data.model import DataLocation, ExecutionLocation

__all__ = ["KEPT", "Fetch", "FetchPlan", "Fetches"]

KEPT = 1024
"""How many fetched copies are remembered for later transfers of their sources."""


@dataclass(slots=True, eq=False)
class Fetch:
    """One transfer in flight that copies a remote source to the local node."""

    source: Key
    job: Job
    """The destination on the local node."""
    copy: asyncio.Future[DataLocation | None]
    """The local replica once written and valid; None if that destination failed."""
    writable: bool
    """The caller may change the copy once the fetch returns."""
    readers: int = 0
    idle: asyncio.Event = field(default_factory=asyncio.Event)
    """Set while no transfer reads the copy."""


@dataclass(frozen=True, slots=True)
class FetchPlan:
    """What a transfer does about fetches of its source (:meth:`Fetches.plan`)."""

    joined: Fetch | None = None
    """The fetch in flight whose copy the transfer may read."""
    started: Fetch | None = None
    """The fetch the transfer makes itself."""
    kept: DataLocation | None = None
    """The copy an earlier fetch made, which the transfer may read if still unchanged."""


class Fetches:
    """The fetches in flight, and the copies recent ones made, by source."""

    def __init__(self) -> None:
        self._in_flight: dict[Key, Fetch] = {}
        self._kept: cachetools.LRUCache[Key, DataLocation] = cachetools.LRUCache(KEPT)

    def plan(self, replica: DataLocation, jobs: list[Job], writable: bool) -> FetchPlan:
        """For a transfer of ``replica`` to ``jobs``, if the replica is remote: the fetch
        in flight whose copy it may read (if none of ``jobs`` is on the replica's
        location); else the kept copy it may read (likewise), and the fetch it makes (if
        one of ``jobs`` writes a real copy on the local node)."""
        if replica.location.local:
            return FetchPlan()
        source = key(replica.location, replica.path)
        beside = any(job.same_location for job in jobs)
        fetched = self._in_flight.get(source)
        if fetched is not None:
            return FetchPlan() if beside else FetchPlan(joined=fetched)
        kept = None if beside else self._kept.get(source)
        local = next((job for job in jobs if job.location.local and not job.link), None)
        if local is None:
            return FetchPlan(kept=kept)
        fetch = Fetch(source, local, asyncio.get_running_loop().create_future(), writable)
        fetch.idle.set()
        self._in_flight[source] = fetch
        return FetchPlan(started=fetch, kept=kept)

    def settle(self, fetch: Fetch, completed: bool) -> None:
        """The fetch has recorded its outcomes: its readers may go on (or, if its copy
        failed, read the source; later transfers do too)."""
        copy = fetch.job.written(completed)
        fetch.copy.set_result(copy)
        if copy is None:
            self._forget(fetch)
        else:
            self._kept[fetch.source] = copy

    async def finish(self, fetch: Fetch) -> None:
        """If the fetch is writable, wait until no transfer reads its copy; later
        transfers read the copy only if it is unchanged."""
        try:
            while fetch.writable and fetch.readers:
                await fetch.idle.wait()
        finally:
            self._forget(fetch)

    def _forget(self, fetch: Fetch) -> None:
        if self._in_flight.get(fetch.source) is fetch:
            del self._in_flight[fetch.source]

    @asynccontextmanager
    async def copy_of(
        self,
        plan: FetchPlan,
        source: DataLocation,
        connector: Callable[[ExecutionLocation], Connector],
    ) -> AsyncIterator[DataLocation | None]:
        """The local copy ``plan`` lets a transfer of ``source`` read, if any: a joined
        fetch's once written (the fetch held from returning while it is read), or a kept
        one still unchanged, like the source."""
        if plan.joined is not None:
            async with _reading(plan.joined) as copy:
                yield copy if copy is not None and copy.valid else None
        elif plan.kept is not None and await _unchanged(plan.kept, source, connector):
            yield plan.kept
        else:
            yield None


@asynccontextmanager
async def _reading(fetch: Fetch) -> AsyncIterator[DataLocation | None]:
    """Hold ``fetch`` from returning while the copy it yields (once written; None if it
    failed) is read."""
    fetch.readers += 1
    fetch.idle.clear()
    try:
        yield await asyncio.shield(fetch.copy)
    finally:
        fetch.readers -= 1
        if not fetch.readers:
            fetch.idle.set()


async def _unchanged(
    copy: DataLocation, source: DataLocation, connector: Callable[[ExecutionLocation], Connector]
) -> bool:
    """Whether ``copy``, which a fetch of ``source`` wrote, still is a file of the size
    and modification time of ``source``'s."""
    if not copy.valid:
        return False
    try:
        theirs, ours = await asyncio.gather(
            connector(source.location).stat(source.location, source.path, follow_symlinks=True),
            connector(copy.location).stat(copy.location, copy.path),
        )
    except StreamFlowDataError:
        return False
    return theirs.kind is ours.kind is FileKind.FILE and (theirs.size, theirs.mtime_ns) == (
        ours.size,
        ours.mtime_ns,
    )
