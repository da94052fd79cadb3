"""The destinations of transfers in flight: who writes each one, and how it fared.

Each destination of a transfer is a :class:`Job`, planned from the caller's targets by
:func:`plan_jobs`. Before writing, a transfer claims its
jobs' destinations; a second transfer writing one of them waits for the first, and drops
the destinations an identical request has just written.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from streamflow_data.cache import Reservation
from streamflow_data.connectors.base import Connector
from streamflow_data.errors import InvalidPathError
from streamflow_data.model import DataLocation, ExecutionLocation, normalize_path

__all__ = ["Claims", "Job", "Key", "Request", "key", "nested", "plan_jobs"]

Key = tuple[str, str, str]
"""A destination: (deployment, location name, path)."""


def key(location: ExecutionLocation, path: str) -> Key:
    """The key of ``path`` on ``location``."""
    return (location.deployment, location.name, path)


def nested(first: str, second: str) -> bool:
    """Whether one path lies inside the other (or they are equal)."""
    shorter, longer = sorted((first, second), key=len)
    return longer == shorter or longer.startswith(shorter.rstrip("/") + "/")


@dataclass(frozen=True, slots=True)
class Request:
    """What a destination is being written from: identical requests share one copy."""

    deployment: str
    name: str
    path: str
    writable: bool
    links: bool = True
    """Same-location, non-writable destinations may be symbolic links."""


@dataclass(slots=True, eq=False)
class Job:
    """One destination of a transfer."""

    location: ExecutionLocation
    path: str
    connector: Connector
    same_location: bool
    """The destination is the source's location."""
    link: bool
    """Same location, not writable: a symbolic link to the source suffices."""
    replica: DataLocation | None = None
    error: Exception | None = None
    reservation: Reservation | None = None
    """Room in the local replica cache, for a copy fetched to the local node."""

    @property
    def key(self) -> Key:
        return key(self.location, self.path)

    def written(self, completed: bool) -> DataLocation | None:
        """The replica this destination holds whole, if it does: the transfer ran to its
        end (``completed``), this destination had no error, and its replica is valid."""
        replica = self.replica
        whole = completed and self.error is None and replica is not None and replica.valid
        return replica if whole else None


def plan_jobs(
    source: DataLocation,
    targets: Sequence[tuple[ExecutionLocation, str]],
    connector: Callable[[ExecutionLocation], Connector],
    writable: bool,
    links: bool,
) -> tuple[list[Job], bool]:
    """The jobs that copy ``source`` to ``targets``, each target validated first (no I/O),
    and whether a target is the source itself."""
    jobs: dict[Key, Job] = {}
    in_place = False
    for location, path in targets:
        path = normalize_path(path)
        served_by = connector(location)
        same = _same_location(location, source.location)
        if same and path == source.path:
            in_place = True
            continue
        others = [job.path for job in jobs.values() if _same_location(location, job.location)]
        for other in [source.path, *others] if same else others:
            if other != path and nested(other, path):
                raise InvalidPathError(
                    f"cannot copy {source.path!r} to {path!r} on {location}: it is inside "
                    f"{other!r}, or holds it, on the same location"
                )
        job = Job(location, path, served_by, same, same and links and not writable)
        jobs.setdefault(job.key, job)
    return list(jobs.values()), in_place


def _same_location(first: ExecutionLocation, second: ExecutionLocation) -> bool:
    return (first.deployment, first.name) == (second.deployment, second.name)


@dataclass(slots=True)
class _InFlight:
    request: Request
    done: asyncio.Future[bool]
    """Resolves to whether the copy to this destination succeeded."""


class Claims:
    """Which transfer is writing each destination right now."""

    def __init__(self) -> None:
        self._in_flight: dict[Key, _InFlight] = {}

    async def claim(self, jobs: list[Job], request: Request) -> list[Job]:
        """Become the writer of every destination, after any transfer writing one of them.

        Destinations an identical request has just written successfully are dropped. All
        are claimed at once, with no wait in between, so two calls never deadlock.
        """
        while True:
            busy = next((job for job in jobs if job.key in self._in_flight), None)
            if busy is None:
                break
            flight = self._in_flight[busy.key]
            succeeded = await asyncio.shield(flight.done)
            if succeeded and flight.request == request:
                jobs = [job for job in jobs if job is not busy]
        loop = asyncio.get_running_loop()
        for job in jobs:
            self._in_flight[job.key] = _InFlight(request, loop.create_future())
        return jobs

    def release(self, jobs: Iterable[Job], succeeded: bool) -> None:
        """Let waiting transfers write these destinations."""
        for job in jobs:
            self._in_flight.pop(job.key).done.set_result(succeeded)

    async def wait_all(self) -> None:
        """Wait until no destination is claimed (the claims in flight now are released)."""
        if self._in_flight:
            await asyncio.wait([asyncio.shield(f.done) for f in self._in_flight.values()])
