"""A file moved by a connector's own route rather than the engine's blocks.

A file of this machine with one destination may go by ``Connector.put_file`` of the
destination's connector (the source is a local file), or ``Connector.get_file`` of the
source's (the destination's writer fills a local file); the route tells the engine what it
moved through :class:`RouteEvents`, as the block path would.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from streamflow_data.connectors.base import Connector, LocalFile, Reader, Writer
from streamflow_data.transfer.state import ChunkState

__all__ = ["RouteEvents", "follow_route", "own_route"]


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
