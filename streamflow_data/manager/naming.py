"""What a person or a client names: an execution location (a deployment, and a location
name that may be left out when the deployment has one location), and a replica on it."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol

from streamflow_data.errors import (
    AmbiguousLocationError,
    UnknownDeploymentError,
    UnknownLocationError,
)
from streamflow_data.manager.default import DefaultDataManager
from streamflow_data.model import DataLocation, ExecutionLocation

__all__ = ["Deployments", "resolve_location", "resolve_targets", "valid_replica"]


class Deployments(Protocol):
    """What knows the locations of deployments: a data manager, or a service's client."""

    def locations(self, deployment: str) -> Sequence[ExecutionLocation]: ...


def resolve_location(
    deployments: Deployments, deployment: str, name: str | None, *, served: bool = True
) -> ExecutionLocation:
    """The location of ``deployment`` called ``name`` (None: its only location).

    Raises :class:`UnknownDeploymentError`, :class:`UnknownLocationError`, or
    :class:`AmbiguousLocationError` when ``name`` is None and there are several. With
    ``served=False`` (replicas tracked, not reached), a location named in full may belong
    to a deployment no connector serves.
    """
    try:
        locations = deployments.locations(deployment)
    except UnknownDeploymentError:
        if served or name is None:
            raise
        return ExecutionLocation(deployment, name)
    if name is None:
        if len(locations) == 1:
            return locations[0]
        raise AmbiguousLocationError(deployment, [loc.name for loc in locations])
    for location in locations:
        if location.name == name:
            return location
    raise UnknownLocationError(ExecutionLocation(deployment, name), [loc.name for loc in locations])


def resolve_targets(
    deployments: Deployments, named: Iterable[tuple[str, str, str]], *, served: bool = True
) -> list[tuple[ExecutionLocation, str]]:
    """Each (deployment, location name, path) as (location, path), see
    :func:`resolve_location`."""
    return [
        (resolve_location(deployments, deployment, name, served=served), path)
        for deployment, name, path in named
    ]


async def valid_replica(
    manager: DefaultDataManager, location: ExecutionLocation, path: str
) -> DataLocation | None:
    """The valid replica of ``path`` on ``location`` that ``manager`` knows. On a miss the
    changes other managers sharing its catalog wrote are read first: a client may name one
    registered a moment ago through another service."""
    found = manager.mapper.resolve(location, path)
    follower = manager.catalog.follower if manager.catalog is not None else None
    if (found is None or not found.valid) and follower is not None:
        await follower.catch_up()
        found = manager.mapper.resolve(location, path)
    return found if found is not None and found.valid else None
