"""Looking at locations: ``ls`` and ``cat`` of any path, and the configured ``deployments``."""

from __future__ import annotations

import argparse
import asyncio
import posixpath
import time
from typing import IO, Any

from streamflow_data.cli.render import human, table
from streamflow_data.cli.session import EXIT_OK, CommandParser, Session
from streamflow_data.cli.targets import parse_target
from streamflow_data.connectors.base import FileKind, WalkEntry
from streamflow_data.errors import ConfigurationError
from streamflow_data.manager import LOCAL_DEPLOYMENT

__all__ = ["COMMANDS"]

_CAT_BLOCK = 4 << 20
"""Bytes ``cat`` reads at once: what it holds in memory, whatever the file's size."""

_KINDS = {FileKind.FILE: "file", FileKind.DIRECTORY: "dir", FileKind.SYMLINK: "link"}


def _add_ls(commands: Any, common: argparse.ArgumentParser) -> None:
    ls = commands.add_parser(
        "ls",
        parents=[common],
        help="list what a path on a location holds: kind, size, modification time, name",
        description="List a directory's entries (the whole tree below it with -R), or a "
        "file itself. A link is listed as a link, with its target; a link named as the "
        "path is followed.",
    )
    ls.add_argument(
        "target", metavar="DEPLOYMENT[/LOCATION]:PATH", help="what to list; a plain path is local"
    )
    ls.add_argument(
        "-R",
        "--recursive",
        action="store_true",
        help="list every entry below, not only the first level",
    )
    ls.set_defaults(handler=ls_command)


def _add_cat(commands: Any, common: argparse.ArgumentParser) -> None:
    cat = commands.add_parser(
        "cat",
        parents=[common],
        help="write a file on a location to standard output",
        description=f"Write the bytes of a file to standard output, {human(_CAT_BLOCK)} at a "
        "time whatever its size.",
    )
    cat.add_argument(
        "target", metavar="DEPLOYMENT[/LOCATION]:PATH", help="the file; a plain path is local"
    )
    cat.set_defaults(handler=cat_command)


def _add_deployments(commands: Any, common: argparse.ArgumentParser) -> None:
    deployments = commands.add_parser(
        "deployments",
        parents=[common],
        help="list the configured deployments, their connector types and location names",
        description="The deployments a DEPLOYMENT[/LOCATION]:PATH may name: 'local' and "
        "those of the configuration, each with the names of its locations.",
    )
    deployments.set_defaults(handler=deployments_command)


COMMANDS: dict[str, CommandParser] = {
    "ls": _add_ls,
    "cat": _add_cat,
    "deployments": _add_deployments,
}


def _modified(mtime_ns: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(mtime_ns / 1e9))


def _describe(entry: WalkEntry) -> dict[str, object]:
    stat = entry.stat
    return {
        "name": entry.relpath,
        "kind": _KINDS[stat.kind],
        "size": stat.size,
        "mode": f"{stat.mode:04o}",
        "mtime": _modified(stat.mtime_ns),
        "target": stat.target,
    }


def _row(entry: WalkEntry) -> list[object]:
    stat = entry.stat
    name = entry.relpath if stat.target is None else f"{entry.relpath} -> {stat.target}"
    size = human(stat.size) if stat.kind is FileKind.FILE else "-"
    return [_KINDS[stat.kind], f"{stat.mode:04o}", size, _modified(stat.mtime_ns), name]


async def ls_command(session: Session, args: argparse.Namespace) -> int:
    """Run ``ls``."""
    target = parse_target(args.target)
    async with session.configuration.create_manager() as manager:
        location = target.location(manager)
        connector = manager.connector(location)
        found = await connector.stat(location, target.path, follow_symlinks=True)
        if found.kind is FileKind.DIRECTORY:
            entries = [
                entry
                async for entry in connector.walk(location, target.path)
                if args.recursive or "/" not in entry.relpath
            ]
        else:
            entries = [WalkEntry(posixpath.basename(target.path), found)]
    entries.sort(key=lambda entry: entry.relpath)
    if session.json:
        listed = [_describe(entry) for entry in entries]
        session.emit({"location": str(location), "path": target.path, "entries": listed})
    elif entries:
        rows = [_row(entry) for entry in entries]
        session.stdout.write(table(["KIND", "MODE", "SIZE", "MODIFIED", "NAME"], rows))
    return EXIT_OK


async def cat_command(session: Session, args: argparse.Namespace) -> int:
    """Run ``cat``."""
    target = parse_target(args.target)
    output: IO[bytes] = session.stdout.buffer
    async with session.configuration.create_manager() as manager:
        location = target.location(manager)
        connector = manager.connector(location)
        found = await connector.stat(location, target.path, follow_symlinks=True)
        if found.kind is FileKind.DIRECTORY:
            raise ConfigurationError(f"{target} is a directory: list it with ls")
        async with await connector.open_reader(location, target.path) as reader:
            offset = 0
            while data := await reader.read(offset, _CAT_BLOCK):
                await asyncio.to_thread(output.write, data)
                offset += len(data)
        await asyncio.to_thread(output.flush)
    return EXIT_OK


async def deployments_command(session: Session, args: argparse.Namespace) -> int:
    """Run ``deployments``."""
    configuration = session.configuration
    kinds = {LOCAL_DEPLOYMENT: "local"}
    kinds.update({name: deployment.kind for name, deployment in configuration.deployments.items()})
    async with configuration.create_manager() as manager:
        names = {name: [location.name for location in manager.locations(name)] for name in kinds}
    if session.json:
        found = [
            {"name": name, "type": kinds[name], "locations": names[name]} for name in sorted(kinds)
        ]
        session.emit(found)
    else:
        rows = [[name, kinds[name], ", ".join(names[name])] for name in sorted(kinds)]
        session.stdout.write(table(["DEPLOYMENT", "TYPE", "LOCATIONS"], rows))
    return EXIT_OK
