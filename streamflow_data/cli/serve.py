"""``streamflow-data serve``: the data manager as a long-running service."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
from typing import Any

from streamflow_data.cli.session import EXIT_OK, CommandParser, Session
from streamflow_data.configfile import default_catalog, read_token

__all__ = ["COMMANDS", "default_socket"]


def default_socket() -> str:
    """``service.sock`` beside the default catalog: where ``serve`` listens and clients
    look when told nothing else."""
    return os.path.join(os.path.dirname(default_catalog()), "service.sock")


def _add_serve(commands: Any, common: argparse.ArgumentParser) -> None:
    parser = commands.add_parser(
        "serve",
        parents=[common],
        help="run the data manager as a service answering the HTTP API",
        description="Hold the manager, its catalog and its connectors in one process and "
        "answer the HTTP API (docs/service.md) until SIGTERM or Ctrl-C; then running "
        "transfers are suspended, resumably, and the catalog is flushed. Listens on a Unix "
        "socket (mode 0600) by default; an address other than loopback needs a token.",
    )
    parser.add_argument(
        "--listen",
        metavar="ADDRESS",
        help="unix:PATH or HOST:PORT (default: the configuration's [service] listen, else "
        f"unix:{default_socket()})",
    )
    parser.add_argument(
        "--token-file",
        metavar="FILE",
        help="require this bearer token (the file's first line; default: "
        "$STREAMFLOW_DATA_TOKEN, else the configuration's [service] token_file)",
    )
    parser.add_argument(
        "--queue",
        action="store_true",
        help="queue mode: submitted transfers go to the catalog's queue, which every "
        "service sharing the catalog in queue mode drains (default: the configuration's "
        "[service] queue)",
    )
    parser.set_defaults(handler=serve_command)


COMMANDS: dict[str, CommandParser] = {"serve": _add_serve}


async def serve_command(session: Session, args: argparse.Namespace) -> int:
    """Run ``serve``."""
    from streamflow_data.service import Endpoint, serve  # aiohttp: only here

    configured = session.configuration.service
    endpoint = Endpoint.parse(args.listen or configured.listen or f"unix:{default_socket()}")
    if endpoint.unix is not None:
        await asyncio.to_thread(os.makedirs, os.path.dirname(endpoint.unix), 0o700, True)
    token = await asyncio.to_thread(read_token, args.token_file, configured.token_file)

    def ready(url: str) -> None:
        session.say(f"serving on {url}")
        session.stdout.flush()

    configuration = session.configuration
    if args.queue:
        service = configuration.service.replace(queue=True)
        configuration = dataclasses.replace(configuration, service=service)
    await serve(configuration, endpoint, token, ready)
    return EXIT_OK
