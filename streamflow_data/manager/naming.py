"""The execution location a person or a client names: a deployment, and a location name
that may be left out when the deployment has one location."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from streamflow_data.errors import (
    AmbiguousLocationError,
    UnknownDeploymentError,
    UnknownLocationError,
)
from streamflow_data.model import ExecutionLocation

__all__ = ["Deployments", "resolve_location"]


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
