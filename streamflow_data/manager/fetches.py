"""Transfers that fetch a remote source to the local node, and the transfers that wait
to send their copy on.

A transfer of a remote source with a destination on the local node is a *fetch*. A
second transfer of the same source that starts while the fetch is in flight waits for it
and reads the local copy instead of the source: the source is read once, and the bytes
leave from this node (over an SSH master, the file itself is handed to it). A writable
fetch returns to its caller only once those readers are done, so that its copy is not
changed under them; a copy that is not writable joins the source's replica set, which
its caller does not change.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from streamflow_data.manager.claims import Job, Key, key
from streamflow_data.model import DataLocation

__all__ = ["Fetch", "Fetches"]


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


class Fetches:
    """The fetches in flight, by source."""

    def __init__(self) -> None:
        self._in_flight: dict[Key, Fetch] = {}

    def join_or_start(
        self, replica: DataLocation, jobs: list[Job], writable: bool
    ) -> tuple[Fetch | None, Fetch | None]:
        """For a transfer of ``replica`` to ``jobs``: the fetch in flight whose copy it may
        send on (if the replica is remote, and none of ``jobs`` is on its location), else
        the fetch it makes itself (if the replica is remote, and one of ``jobs`` writes a
        real copy on the local node)."""
        if replica.location.local:
            return None, None
        source = key(replica.location, replica.path)
        fetched = self._in_flight.get(source)
        if fetched is not None:
            return (None if any(job.same_location for job in jobs) else fetched), None
        local = next((job for job in jobs if job.location.local and not job.link), None)
        if local is None:
            return None, None
        fetch = Fetch(source, local, asyncio.get_running_loop().create_future(), writable)
        fetch.idle.set()
        self._in_flight[source] = fetch
        return None, fetch

    def settle(self, fetch: Fetch, completed: bool) -> None:
        """The fetch has recorded its outcomes: its readers may go on (or, if its copy
        failed, read the source; later transfers do too)."""
        replica = fetch.job.replica
        written = completed and fetch.job.error is None and replica is not None and replica.valid
        fetch.copy.set_result(replica if written else None)
        if not written:
            self._forget(fetch)

    async def finish(self, fetch: Fetch) -> None:
        """If the fetch is writable, wait until no transfer reads its copy; later
        transfers read the source (or, if the copy is part of the source's replica set,
        may choose it)."""
        try:
            while fetch.writable and fetch.readers:
                await fetch.idle.wait()
        finally:
            self._forget(fetch)

    def _forget(self, fetch: Fetch) -> None:
        if self._in_flight.get(fetch.source) is fetch:
            del self._in_flight[fetch.source]

    @staticmethod
    @asynccontextmanager
    async def reading(fetch: Fetch) -> AsyncIterator[DataLocation | None]:
        """Hold ``fetch`` from returning while the copy it yields (once written; None if
        it failed) is read."""
        fetch.readers += 1
        fetch.idle.clear()
        try:
            yield await asyncio.shield(fetch.copy)
        finally:
            fetch.readers -= 1
            if not fetch.readers:
                fetch.idle.set()
