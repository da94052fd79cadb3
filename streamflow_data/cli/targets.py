"""Command-line locations: ``DEPLOYMENT[/LOCATION]:PATH``, or a plain local path."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from streamflow_data.errors import (
    AmbiguousLocationError,
    ConfigurationError,
    UnknownDeploymentError,
)
from streamflow_data.manager import LOCAL_DEPLOYMENT
from streamflow_data.manager.naming import Deployments, resolve_location
from streamflow_data.model import ExecutionLocation, normalize_path

__all__ = ["Target", "given_path", "parse_target"]

_REMOTE = re.compile(
    r"^(?P<deployment>[A-Za-z0-9_][A-Za-z0-9_.-]*)(?:/(?P<name>[^:/]+))?:(?P<path>.*)$"
)


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
        """The execution location meant (see :func:`resolve_location`), with errors
        saying how to write it on the command line."""
        try:
            return resolve_location(manager, self.deployment, self.name, served=served)
        except AmbiguousLocationError as exc:
            raise ConfigurationError(
                f"deployment {self.deployment!r} has {len(exc.names)} locations: write "
                f"{self.deployment}/LOCATION:PATH with one of {', '.join(exc.names)}"
            ) from exc
        except UnknownDeploymentError as exc:
            if served:
                raise
            raise ConfigurationError(
                f"{exc}: name the location in full ({self.deployment}/LOCATION:"
                f"{self.path}) to refer to a replica on a deployment it cannot reach"
            ) from exc

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
