"""Where steps run and data lives: the execution location, the lowest of the value types
(the errors that name one import it, as does everything above them)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ExecutionLocation"]


@dataclass(frozen=True, slots=True)
class ExecutionLocation:
    """A place where steps run and data lives: one location of a deployment.

    Frozen and hashable, so it can key dictionaries. Two locations are the same when all
    their fields are equal; replicas are indexed by ``(deployment, name)`` and path.
    """

    deployment: str
    """The deployment (a group of locations served by one connector) it belongs to."""
    name: str
    """The location's name, unique within its deployment."""
    local: bool = False
    """True when the location is the node streamflow-data itself runs on."""
    hostname: str | None = None
    """The host name of the location, when it has one; informational."""

    def __str__(self) -> str:
        return f"{self.deployment}/{self.name}"
