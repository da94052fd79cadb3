"""What every command runs with, and the exit statuses they return."""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TextIO

from streamflow_data.configfile import Configuration
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

__all__ = [
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_PARTIAL",
    "EXIT_USAGE",
    "USAGE_ERRORS",
    "Command",
    "CommandParser",
    "Session",
    "write_text",
]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_PARTIAL = 3
EXIT_INTERRUPTED = 130

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
    shutdown: asyncio.Event = field(default_factory=asyncio.Event)
    """Set by Ctrl-C: transfers stop cleanly, keeping what they wrote for a resume."""

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
        print(f"streamflow-data: {text}", file=self.stderr)


Command = Callable[[Session, argparse.Namespace], Awaitable[int]]
"""What runs a command: its handler, set on its parser."""

CommandParser = Callable[[Any, argparse.ArgumentParser], None]
"""Adds one command's parser to the subcommands (argparse's action, untyped), with the
options every command takes as its parent."""


def write_text(path: str, text: str) -> None:
    """Write a report file (blocking: call it in a thread)."""
    with open(path, "w", encoding="utf-8") as file:
        file.write(text)
