"""What every command runs with, and the exit statuses they return."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TextIO

from streamflow_data.configfile import Configuration
from streamflow_data.connectors import localfiles as files
from streamflow_data.errors import (
    CatalogError,
    ConfigurationError,
    ConnectorNotFoundError,
    InvalidPathError,
    UnknownDeploymentError,
    UnknownLocationError,
    UnknownPathError,
    UnknownTransferError,
)
from streamflow_data.transfer.events import TransferListener

if TYPE_CHECKING:
    from streamflow_data.remote import RemoteDataManager

__all__ = [
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_PARTIAL",
    "EXIT_USAGE",
    "SERVICE_ENVIRONMENT",
    "USAGE_ERRORS",
    "Command",
    "CommandParser",
    "JsonFormatter",
    "PlainFormatter",
    "Session",
    "error_line",
    "write_text",
]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_PARTIAL = 3
EXIT_INTERRUPTED = 130

SERVICE_ENVIRONMENT = "STREAMFLOW_DATA_SERVICE"
"""The environment variable naming the service commands work through by default."""

USAGE_ERRORS = (
    ConfigurationError,
    ConnectorNotFoundError,
    InvalidPathError,
    UnknownDeploymentError,
    UnknownLocationError,
    UnknownPathError,
    UnknownTransferError,
    CatalogError,
)
"""Errors that mean the command was asked something it cannot do: exit status 2."""


class PlainFormatter(logging.Formatter):
    """``streamflow-data: LEVEL: message``, with a record's exception as its one-line
    message: the command line shows no traceback unless asked (``-vv``)."""

    def __init__(self, tracebacks: bool = False) -> None:
        super().__init__("streamflow-data: %(levelname)s: %(message)s")
        self.tracebacks = tracebacks

    def format(self, record: logging.LogRecord) -> str:
        if self.tracebacks or not record.exc_info:
            return super().format(record)
        error = record.exc_info[1]
        line = super().format(logging.makeLogRecord({**vars(record), "exc_info": None}))
        return f"{line}: {error}" if error is not None and str(error) else line


class JsonFormatter(logging.Formatter):
    """Log records as JSON lines (``--log-format json``): time (UTC, ISO 8601,
    milliseconds), level, logger, message, and the exception if any (its traceback only
    when asked: ``-vv``)."""

    def __init__(self, tracebacks: bool = False) -> None:
        super().__init__()
        self.tracebacks = tracebacks

    def format(self, record: logging.LogRecord) -> str:
        created = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        document = {
            "time": f"{created}.{int(record.msecs):03}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            error = record.exc_info[1]
            if self.tracebacks or error is None:
                document["exception"] = self.formatException(record.exc_info)
            else:
                document["exception"] = str(error)
        return json.dumps(document)


def error_line(text: str, json_logs: bool) -> str:
    """The line reporting a failure on stderr: plain, or a JSON log record (``--log-format
    json``) like every other line there."""
    if not json_logs:
        return f"streamflow-data: {text}"
    fields = {"name": "streamflow_data.cli", "levelname": "ERROR", "msg": text}
    return JsonFormatter().format(logging.makeLogRecord(fields))


@dataclass
class Session:
    """What every command runs with: the configuration, the output streams, the options
    shared by all commands, and the Ctrl-C state."""

    configuration: Configuration
    stdout: TextIO
    stderr: TextIO
    json: bool = False
    quiet: bool = False
    progress: bool = True
    json_logs: bool = False
    """Errors as JSON log records (``--log-format json``)."""
    shutdown: asyncio.Event = field(default_factory=asyncio.Event)
    """Set by Ctrl-C: transfers stop cleanly, keeping what they wrote for a resume."""
    service: str | None = None
    """The URL of a running service to work through (``--service``), if any."""
    token: str | None = None
    """The service's bearer token, if it requires one."""

    def remote(self, listeners: Sequence[TransferListener] = ()) -> RemoteDataManager:
        """A client of the service (``--service``), with its token."""
        from streamflow_data.remote import RemoteDataManager  # aiohttp: only when used

        if self.service is None:
            raise ConfigurationError("no service: give --service URL")
        return RemoteDataManager(self.service, token=self.token, listeners=listeners)

    @property
    def interrupted(self) -> bool:
        return self.shutdown.is_set()

    def say(self, text: str) -> None:
        """A line for the user (on stdout), unless ``--quiet`` or ``--json``."""
        if not (self.quiet or self.json):
            print(text, file=self.stdout)

    def emit(self, document: object) -> None:
        """The machine-readable result of a ``--json`` command."""
        json.dump(document, self.stdout, indent=2, default=str)
        self.stdout.write("\n")

    def error(self, text: str) -> None:
        """A problem, on stderr (even with ``--quiet``)."""
        print(error_line(text, self.json_logs), file=self.stderr)


Command = Callable[[Session, argparse.Namespace], Awaitable[int]]
"""What runs a command: its handler, set on its parser."""

CommandParser = Callable[[Any, argparse.ArgumentParser], None]
"""Adds one command's parser to the subcommands (argparse's action, untyped), with the
options every command takes as its parent."""


def write_text(path: str, text: str) -> None:
    """Write a report file whole, under a temporary name renamed into place, creating its
    directory (blocking: call it in a thread)."""
    path = os.path.abspath(path)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    files.write_whole(path, text.encode(), None, None, False, None, True)
