"""A file moved by a connector's own route rather than the engine's blocks.

A file of this machine with one destination may go by ``Connector.put_file`` of the
destination's connector (the source is a local file), or ``Connector.get_file`` of the
source's (the destination's writer fills a local file); the route tells the engine what it
moved through :class:`RouteEvents`, as the block path would. A local file with several
destinations goes by their ``put_file`` routes at once when every one has one: each
destination's program reads the file itself (the same cached pages), and this process
reads it once for all, for the chunks' checksums
(:class:`~streamflow_data.connectors.localcopy.SourceChecksums`).
"""

from __future__ import annotations

import asyncio
import functools
import inspect
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

from streamflow_data.connectors.base import Connector, LocalFile, Reader, Writer
from streamflow_data.transfer.state import ChunkState

__all__ = ["RouteEvents", "every_route", "follow_route", "follow_routes", "own_route"]

D = TypeVar("D")


@dataclass(frozen=True, slots=True)
class RouteEvents:
    """The engine's :class:`~streamflow_data.connectors.localcopy.CopyEvents` for one
    destination of one file."""

    journaled: bool
    moved: Callable[[int, float], None]
    read: Callable[[int, float], None]
    recovered: Callable[[Exception], None]
    held: Callable[[int, int], None]


def own_route(
    reader: Reader,
    writer: Writer,
    source: Connector,
    destination: Connector,
    cut: Callable[[str], LocalFile],
    events: RouteEvents,
) -> Awaitable[None] | None:
    """The route of ``destination``'s ``put_file`` for a local source file, else of
    ``source``'s ``get_file`` into a local destination file, if the connector has one;
    ``cut`` makes the :class:`LocalFile` of a path."""
    if reader.local_file is not None:
        route = destination.put_file(writer, cut(reader.local_file), events)
        if route is not None:
            return route
    if writer.local_file is not None:
        return source.get_file(reader, cut(writer.local_file), events)
    return None


async def follow_route(
    route: Awaitable[None], mark: Callable[[ChunkState], None]
) -> Exception | None:
    """Await ``route``, the file's chunks marked running until it ends; its error, if it
    failed."""
    mark(ChunkState.RUNNING)
    try:
        await route
    except Exception as exc:
        mark(ChunkState.ERRORED)
        return exc
    except BaseException:  # cancelled: the route's programs and threads are done
        mark(ChunkState.ERRORED)
        raise
    mark(ChunkState.FINISHED)
    return None


def every_route(
    writers: Mapping[D, Writer],
    route_of: Callable[[D, Writer], Awaitable[None] | None],
) -> dict[D, Awaitable[None]] | None:
    """Each destination's own route (``route_of``), or None when one has none: the file
    then goes by blocks to all of them, and the routes made are dropped unstarted."""
    routes: dict[D, Awaitable[None]] = {}
    for destination, writer in writers.items():
        route = route_of(destination, writer)
        if route is None:
            for made in routes.values():
                if inspect.iscoroutine(made):
                    made.close()
            return None
        routes[destination] = route
    return routes


async def follow_routes(
    routes: Mapping[D, Awaitable[None]], mark: Callable[[D, ChunkState], None]
) -> dict[D, Exception]:
    """:func:`follow_route` of each destination's route, all at once; the error of each
    that failed."""
    async with asyncio.TaskGroup() as group:
        followed = {
            destination: group.create_task(
                follow_route(route, functools.partial(mark, destination))
            )
            for destination, route in routes.items()
        }
    return {d: error for d, task in followed.items() if (error := task.result()) is not None}
