"""Our errors for the failures of asyncssh, of the ``ssh`` program and of sockets."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import asyncssh

from streamflow_data.sdk import (
    AuthenticationError,
    ConnectorError,
    ExecutionLocation,
    LocationUnreachableError,
)

__all__ = ["translate", "translating"]


def translate(error: BaseException, location: ExecutionLocation, path: str) -> ConnectorError:
    """Our error for an asyncssh or socket failure (refused key, unreachable host, a
    dropped connection)."""
    translated: ConnectorError
    if isinstance(error, ConnectorError):
        return error
    if isinstance(error, asyncssh.PermissionDenied | asyncssh.HostKeyNotVerifiable):
        translated = AuthenticationError(location, path, str(error) or type(error).__name__)
    elif isinstance(
        error, asyncssh.Error | asyncssh.ChannelOpenError | OSError | TimeoutError | EOFError
    ):
        detail = str(error) or type(error).__name__
        if isinstance(error, OSError) and error.errno:
            detail = f"{os.strerror(error.errno)} ({detail})"
        translated = LocationUnreachableError(location, path, detail)
    else:
        raise TypeError(f"not a connection error: {error!r}") from error
    translated.__cause__ = error
    return translated


@contextlib.contextmanager
def translating(location: ExecutionLocation, path: str) -> Iterator[None]:
    """Raise our error (see :func:`translate`) for an asyncssh or OS failure inside."""
    try:
        yield
    except (asyncssh.Error, OSError) as exc:
        raise translate(exc, location, path) from exc
