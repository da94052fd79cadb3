"""The replica graph from the command line: ``locate``, ``source``, ``register``,
``invalidate``."""

from __future__ import annotations

import argparse
import os
from typing import Any

from streamflow_data.cli.render import table
from streamflow_data.cli.session import EXIT_FAILED, EXIT_OK, EXIT_USAGE, CommandParser, Session
from streamflow_data.cli.targets import given_path, parse_target
from streamflow_data.errors import (
    ConfigurationError,
    PathNotFoundError,
    UnknownDeploymentError,
    UnknownPathError,
)
from streamflow_data.manager import DefaultDataManager
from streamflow_data.model import DataLocation, DataType, normalize_path

__all__ = ["COMMANDS"]

_TYPES = {"primary": DataType.PRIMARY, "symbolic_link": DataType.SYMBOLIC_LINK}


def _add_locate(commands: Any, common: argparse.ArgumentParser) -> None:
    locate = commands.add_parser(
        "locate",
        parents=[common],
        help="list the valid replicas of a path, with their type and availability",
        description="List every valid replica of the data registered at PATH: the replicas "
        "at PATH on any location and every replica related to one of them.",
    )
    locate.add_argument("path", metavar="PATH", help="an absolute path (a relative one is local)")
    locate.add_argument("--deployment", help="only replicas on this deployment")
    locate.add_argument("--location", help="only replicas on locations of this name")
    locate.add_argument("--type", choices=sorted(_TYPES), help="only replicas of this type")
    locate.set_defaults(handler=locate_command)


def _add_source(commands: Any, common: argparse.ArgumentParser) -> None:
    source = commands.add_parser(
        "source",
        parents=[common],
        help="show which replica of a path the source policy picks for a deployment",
    )
    source.add_argument("path", metavar="PATH", help="an absolute path (a relative one is local)")
    source.add_argument(
        "--to",
        metavar="DEPLOYMENT",
        required=True,
        dest="deployment",
        help="the deployment the data is to be copied to",
    )
    source.set_defaults(handler=source_command)


def _add_register(commands: Any, common: argparse.ArgumentParser) -> None:
    register = commands.add_parser(
        "register",
        parents=[common],
        help="record that a path on a location holds data",
        description="Record a replica in the catalog. On a configured deployment the path "
        "must exist. With --same-as, the new replica and an already registered one hold "
        "the same data (a relation).",
    )
    register.add_argument(
        "target", metavar="DEPLOYMENT[/LOCATION]:PATH", help="the replica; a plain path is local"
    )
    register.add_argument(
        "--type",
        choices=sorted(_TYPES),
        default="primary",
        help="primary (the data itself, the default) or symbolic_link (a link to it)",
    )
    register.add_argument("--relpath", help="the part of the path that matters to the workflow")
    register.add_argument(
        "--same-as", metavar="DEPLOYMENT[/LOCATION]:PATH", help="a registered replica of it"
    )
    register.set_defaults(handler=register_command)


def _add_invalidate(commands: Any, common: argparse.ArgumentParser) -> None:
    invalidate = commands.add_parser(
        "invalidate",
        parents=[common],
        help="mark a replica and everything below it invalid",
    )
    invalidate.add_argument(
        "target",
        metavar="DEPLOYMENT[/LOCATION]:PATH",
        help="the replica to invalidate, with everything below it",
    )
    invalidate.set_defaults(handler=invalidate_command)


COMMANDS: dict[str, CommandParser] = {
    "locate": _add_locate,
    "source": _add_source,
    "register": _add_register,
    "invalidate": _add_invalidate,
}


def _graph_path(text: str) -> str:
    text = given_path(text)
    return normalize_path(text if text.startswith("/") else os.path.abspath(text))


def _describe(replica: DataLocation) -> dict[str, object]:
    return {
        "location": str(replica.location),
        "path": replica.path,
        "relpath": replica.relpath,
        "type": replica.data_type.value,
        "available": replica.available,
    }


async def locate_command(session: Session, args: argparse.Namespace) -> int:
    """Run ``locate``."""
    path = _graph_path(args.path)
    graph = session.remote() if session.service else session.configuration.create_manager()
    async with graph as manager:
        found = manager.get_data_locations(
            path, args.deployment, args.location, None if args.type is None else _TYPES[args.type]
        )
    replicas = [_describe(replica) for replica in found]
    if session.json:
        session.emit({"path": path, "replicas": replicas})
    elif replicas:
        rows = [
            [r["location"], r["path"], r["type"], "yes" if r["available"] else "being written"]
            for r in replicas
        ]
        session.stdout.write(table(["LOCATION", "PATH", "TYPE", "AVAILABLE"], rows))
    else:
        session.say(f"no valid replica of {path}")
    return EXIT_OK if replicas else EXIT_FAILED


async def source_command(session: Session, args: argparse.Namespace) -> int:
    """Run ``source``."""
    path = _graph_path(args.path)
    async with session.configuration.create_manager() as manager:
        _check_destination_deployment(manager, path, args.deployment)
        choice = await manager.get_source_location(path, args.deployment)
    if session.json:
        session.emit({"path": path, "to": args.deployment, "source": choice and _describe(choice)})
    elif choice is not None:
        session.say(f"{choice.location}:{choice.path}")
    else:
        session.say(f"no valid primary replica of {path}")
    return EXIT_OK if choice is not None else EXIT_FAILED


def _check_destination_deployment(manager: DefaultDataManager, path: str, name: str) -> None:
    """Refuse a ``--to`` deployment that is neither configured nor holds a replica of
    ``path``: a misspelled name would otherwise be answered as if it were real."""
    try:
        manager.locations(name)
    except UnknownDeploymentError as exc:
        if not manager.get_data_locations(path, deployment=name):
            raise ConfigurationError(f"{exc}, and it holds no replica of {path}") from exc


async def register_command(session: Session, args: argparse.Namespace) -> int:
    """Run ``register``."""
    target = parse_target(args.target)
    async with session.configuration.create_manager() as manager:
        location = target.location(manager, served=False)
        try:
            connector = manager.connector(location)
        except UnknownDeploymentError:
            connector = None  # a deployment this configuration cannot reach: trust the caller
        if connector is not None:
            try:
                await connector.stat(location, target.path, follow_symlinks=False)
            except PathNotFoundError:
                session.error(f"register: {target} does not exist")
                return EXIT_USAGE
        other = None
        if args.same_as is not None:
            same = parse_target(args.same_as)
            other_location = same.location(manager, served=False)
            other = manager.mapper.find(other_location, same.path)
            if other is None:
                raise UnknownPathError(same.path, other_location)
        replica = manager.register_path(location, target.path, args.relpath, _TYPES[args.type])
        if other is not None:
            manager.register_relation(other, replica)
    if session.json:
        session.emit({"registered": _describe(replica), "same_as": args.same_as})
    else:
        related = f", same data as {args.same_as}" if other is not None else ""
        session.say(f"registered {target} ({args.type}{related})")
    return EXIT_OK


async def invalidate_command(session: Session, args: argparse.Namespace) -> int:
    """Run ``invalidate``."""
    target = parse_target(args.target)
    async with session.configuration.create_manager() as manager:
        location = target.location(manager, served=False)
        prefix = target.path.rstrip("/") + "/"
        count = sum(
            1
            for replica in manager.mapper.replicas()
            if (replica.deployment, replica.name) == (location.deployment, location.name)
            and (replica.path == target.path or replica.path.startswith(prefix))
        )
        manager.invalidate_location(location, target.path)
    if session.json:
        session.emit({"invalidated": count, "location": str(location), "path": target.path})
    elif count:
        session.say(f"invalidated {count} replica(s) at and below {target}")
    else:
        session.say(f"no valid replica at {target}: nothing invalidated")
    return EXIT_OK
