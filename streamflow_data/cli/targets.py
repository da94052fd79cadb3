"""Command-line locations: ``DEPLOYMENT[/LOCATION]:PATH``, or a plain local path."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from streamflow_data.errors import (
    ConfigurationError,
    UnknownDeploymentError,
    UnknownLocationError,
)
from streamflow_data.manager import LOCAL_DEPLOYMENT
from streamflow_data.model import ExecutionLocation, normalize_path

__all__ = ["Target", "given_path", "parse_target"]

_REMOTE = re.compile(
    r"^(?P<deployment>[A-Za-z0-9_][A-Za-z0-9_.-]*)(?:/(?P<name>[^:/]+))?:(?P<path>.*)$"
)


class Deployments(Protocol):
    """What knows the locations of deployments: a data manager, or a service's client."""

    def locations(self, deployment: str) -> Sequence[ExecutionLocation]: ...


@dataclass(frozen=True, slots=True)
class Target:
    """A path on a location, as written on the command line."""

    deployment: str
    name: str | None
    """The location within the deployment; None when the deployment has only one."""
    path: str
    """Absolute and normalized."""
    trailing_slash: bool = False
    """The argument ended with '/': as a destination, a directory to copy into."""

    def location(self, manager: Deployments, *, served: bool = True) -> ExecutionLocation:
        """The execution location meant; raises when the deployment or location is
        unknown, or when the deployment has several locations and none is named.

        With ``served=False`` (queries of the replica graph), a location named in full may
        belong to a deployment the configuration has no connector for.
        """
        try:
            locations = manager.locations(self.deployment)
        except UnknownDeploymentError as exc:
            if served:
                raise
            if self.name is None:
                raise ConfigurationError(
                    f"{exc}: name the location in full ({self.deployment}/LOCATION:"
                    f"{self.path}) to refer to a replica on a deployment it cannot reach"
                ) from exc
            return ExecutionLocation(self.deployment, self.name)
        if self.name is None:
            if len(locations) == 1:
                return locations[0]
            raise ConfigurationError(
                f"deployment {self.deployment!r} has {len(locations)} locations: write "
                f"{self.deployment}/LOCATION:PATH with one of "
                f"{', '.join(loc.name for loc in locations)}"
            )
        for location in locations:
            if location.name == self.name:
                return location
        raise UnknownLocationError(
            ExecutionLocation(self.deployment, self.name), [loc.name for loc in locations]
        )

    def __str__(self) -> str:
        if self.deployment == LOCAL_DEPLOYMENT and self.name is None:
            return self.path
        where = self.deployment if self.name is None else f"{self.deployment}/{self.name}"
        return f"{where}:{self.path}"


def given_path(text: str) -> str:
    """``text``, a path argument; an empty one is refused (it would silently mean the
    working directory)."""
    if not text:
        raise ConfigurationError("an empty path: name a file or a directory ('.' for here)")
    return text


def parse_target(text: str) -> Target:
    """Read ``DEPLOYMENT[/LOCATION]:PATH``; anything starting with ``/``, ``.`` or ``~``, or
    without that form, is a local path, made absolute from the working directory."""
    trailing = given_path(text).endswith("/")
    found = None if text[:1] in ("/", ".", "~") else _REMOTE.match(text)
    if found is None:
        path = os.path.abspath(os.path.expanduser(text))
        return Target(LOCAL_DEPLOYMENT, None, path, trailing)
    return Target(found["deployment"], found["name"], normalize_path(found["path"]), trailing)
