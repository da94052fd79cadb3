"""The ``streamflow-data`` command line: arguments, configuration, logging, exit status.

Exit status: 0 success; 1 failure (nothing of the work succeeded, or a location failed);
2 usage error (bad arguments or configuration, unknown location, missing source, an
unusable catalog); 3 partial failure (some destinations or files failed, others
succeeded); 130 interrupted (Ctrl-C: the work in flight is stopped cleanly, kept for a
resume, and what was finished is reported).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import logging
import os
import signal
import sys
from collections.abc import Sequence

from streamflow_data import __version__
from streamflow_data.cli import browse, copy, deliver, queries, reports, serve
from streamflow_data.cli.session import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    SERVICE_ENVIRONMENT,
    USAGE_ERRORS,
    Command,
    CommandParser,
    JsonFormatter,
    PlainFormatter,
    Session,
    error_line,
)
from streamflow_data.configfile import Configuration, load_configuration, read_token
from streamflow_data.errors import StreamFlowDataError

__all__ = ["build_parser", "command_parsers", "console", "main"]


_HANDLER_NAME = "streamflow-data-cli"


def _not_noise(record: logging.LogRecord) -> bool:
    """False for asyncio's reports of writes to a connection already lost, whose
    operation fails with the connection's own error, reported once:

    - its count of writes to a lost socket (asyncssh writes a channel's buffered packets
      before it learns of the loss);
    - aiohttp's request-body task that failed to end the body on a closing connection
      (aiohttp leaves that failure unread when the endpoint drops mid-request).
    """
    if record.name != "asyncio":
        return True
    if record.msg == "socket.send() raised exception.":
        return False
    failure = record.exc_info[1] if record.exc_info else None
    return not (
        str(record.msg).startswith("Task exception was never retrieved")
        and "ClientRequest.write_bytes()" in str(record.msg)
        and isinstance(failure, ConnectionResetError)
    )


def _configure_logging(verbosity: int, quiet: bool, log_format: str) -> None:
    """Log to stderr, the package's records and other libraries' warnings alike, in the
    chosen format: this run's handler replaces an earlier run's (in-process callers)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.set_name(_HANDLER_NAME)
    handler.addFilter(_not_noise)
    tracebacks = verbosity >= 2 and not quiet
    if log_format == "json":
        handler.setFormatter(JsonFormatter(tracebacks))
    else:
        handler.setFormatter(PlainFormatter(tracebacks))
    level = (
        logging.ERROR
        if quiet
        else [logging.WARNING, logging.INFO, logging.DEBUG][min(verbosity, 2)]
    )
    package = logging.getLogger("streamflow_data")
    for logger in (package, logging.getLogger()):
        for earlier in [h for h in logger.handlers if h.get_name() == _HANDLER_NAME]:
            logger.removeHandler(earlier)
        logger.addHandler(handler)
    package.setLevel(level)
    package.propagate = False  # the root's handler is the same: print each record once


def _common_options() -> argparse.ArgumentParser:
    """Options every command takes, before or after the command name."""
    common = argparse.ArgumentParser(add_help=False, argument_default=argparse.SUPPRESS)
    common.add_argument(
        "--config",
        metavar="FILE",
        help="the TOML configuration (default: $STREAMFLOW_DATA_CONFIG, else "
        "./streamflow-data.toml if present, else the local node and a catalog under the "
        "user's state directory)",
    )
    common.add_argument(
        "--catalog",
        metavar="PATH",
        help="the catalog file, instead of the configuration's; ':memory:' keeps nothing",
    )
    common.add_argument("-v", "--verbose", action="count", help="log more (-vv: debugging details)")
    common.add_argument("-q", "--quiet", action="store_true", help="print only errors")
    common.add_argument(
        "--log-format", choices=["text", "json"], help="log lines as text (default) or JSON"
    )
    common.add_argument("--json", action="store_true", help="print a JSON result on stdout")
    common.add_argument(
        "--service",
        metavar="URL",
        help="work through a running service, sharing its engine (cp, locate, status, "
        "stats): unix:///PATH or http://HOST:PORT; default: $STREAMFLOW_DATA_SERVICE, else "
        "the configuration's [service] url",
    )
    return common


_COMMANDS: dict[str, CommandParser] = {
    **copy.COMMANDS,
    **deliver.COMMANDS,
    **browse.COMMANDS,
    **queries.COMMANDS,
    **reports.COMMANDS,
    **serve.COMMANDS,
}

_VALUED = ("--config", "--catalog", "--log-format", "--service")
"""The options every command takes that read the next word as their value."""


def _named_command(argv: Sequence[str]) -> str | None:
    """The command ``argv`` runs, when it can be told before parsing: then only that
    command's parser is built (building all of them costs about 10 ms of start-up here)."""
    words = iter(argv)
    for word in words:
        if word in ("-h", "--help"):
            return None  # the help of the main parser lists every command
        if word.startswith("-"):
            # An option of the main parser: its value, if it takes one, is the next word
            # (argparse also accepts unambiguous prefixes of option names).
            if len(word) > 2 and "=" not in word and any(o.startswith(word) for o in _VALUED):
                next(words, None)
            continue
        return word if word in _COMMANDS else None
    return None


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The argument parser of every command, or of only the command ``argv`` names."""
    command = None if argv is None else _named_command(argv)
    return command_parsers(command)[0]


def command_parsers(
    only: str | None = None,
) -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    """The main parser and each command's own (the CLI reference documents them all);
    with ``only``, that command's alone."""
    common = _common_options()
    parser = argparse.ArgumentParser(
        prog="streamflow-data",
        description="Track data replicas and move data between execution locations.",
        epilog="Locations are written DEPLOYMENT[/LOCATION]:PATH; a plain path is local. "
        "Exit status: 0 success, 1 failure, 2 usage error, 3 partial failure, "
        "130 interrupted.",
        parents=[common],
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", help="what to do (COMMAND --help: how)"
    )
    for name, add in _COMMANDS.items():
        if only in (None, name):
            add(commands, common)
    return parser, dict(commands.choices)


def _configuration(args: argparse.Namespace) -> Configuration:
    configuration = load_configuration(getattr(args, "config", None))
    catalog_path = getattr(args, "catalog", None)
    if catalog_path:
        catalog = configuration.catalog.replace(path=catalog_path)
        configuration = dataclasses.replace(configuration, catalog=catalog)
    return configuration


async def _run(command: Command, session: Session, args: argparse.Namespace) -> int:
    loop = asyncio.get_running_loop()

    def interrupt() -> None:
        # Stop cleanly at the first Ctrl-C; a second one stops at once.
        session.shutdown.set()
        loop.remove_signal_handler(signal.SIGINT)

    with contextlib.suppress(NotImplementedError, RuntimeError):  # not the main thread
        loop.add_signal_handler(signal.SIGINT, interrupt)
    try:
        return await command(session, args)
    finally:
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.remove_signal_handler(signal.SIGINT)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    words = sys.argv[1:] if argv is None else argv
    args = build_parser(words).parse_args(words)
    quiet = getattr(args, "quiet", False)
    log_format = getattr(args, "log_format", "text")
    _configure_logging(getattr(args, "verbose", 0), quiet, log_format)
    command: Command = args.handler
    stderr = sys.stderr
    json_logs = log_format == "json"
    try:
        configuration = _configuration(args)
        service = (
            getattr(args, "service", None)
            or os.environ.get(SERVICE_ENVIRONMENT)
            or configuration.service.url
        )
        token = read_token(None, configuration.service.token_file) if service else None
        session = Session(
            configuration,
            sys.stdout,
            stderr,
            json=getattr(args, "json", False),
            quiet=quiet,
            progress=not (quiet or getattr(args, "no_progress", False)),
            json_logs=json_logs,
            service=service,
            token=token,
        )
        return asyncio.run(_run(command, session, args))
    except USAGE_ERRORS as exc:
        print(error_line(str(exc), json_logs), file=stderr)
        return EXIT_USAGE
    except StreamFlowDataError as exc:
        print(error_line(str(exc), json_logs), file=stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print(error_line("interrupted", json_logs), file=stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        return EXIT_FAILED


def console() -> int:
    """The ``streamflow-data`` console script: :func:`main`, in a process of its own."""
    return main()
