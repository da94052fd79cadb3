"""The lanes of a big file on a host: long-running ``dd`` processes at an offset.

A *lane* is one remote ``dd`` positioned at an offset. A read or write at the offset where
a lane stands continues it, so a file read or written in order costs one stream, and
chunks moved in parallel each get their own lane. An idle lane may be closed by the
transport to make room (:meth:`~streamflow_data.shell.transport.CommandTransport.mark_idle`);
the next operation at its offset reopens it there. Each lane's process is a
:class:`~streamflow_data.shell.transport.Stream` of the location's transport; blocks go to
it whole. :mod:`~streamflow_data.shell.reader` and :mod:`~streamflow_data.shell.writer`
use them.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

from streamflow_data.errors import ConnectorError, error_type
from streamflow_data.location import ExecutionLocation
from streamflow_data.shell.commands import quote
from streamflow_data.shell.transport import CommandTransport, Stream
from streamflow_data.threads import settled

__all__ = [
    "READ_BLOCK",
    "WRITE_BLOCK",
    "Lane",
    "Lanes",
    "Reported",
    "local_error",
    "open_local",
    "range_command",
]

READ_BLOCK = "bs=256K status=none"
"""``dd``'s buffer on the host when it reads a file into a stream (as fast as ``cat``)."""
WRITE_BLOCK = "bs=32K status=none"
"""``dd``'s buffer on the host when it writes a stream into a file: an SSH channel's packet,
about what one read of the pipe from ``sshd`` brings, as ``cat`` copies it. Uploads took
longer the larger the buffer, from 32 KiB to 1 MiB (see docs/performance.md)."""


@dataclass(eq=False)
class Lane:
    """A remote process positioned at ``position``, and the operations queued on it."""

    position: int
    """Where the next operation queued on this lane starts."""
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    process: Stream | None = None
    pending: int = 0
    stack: contextlib.AsyncExitStack | None = None


class Lanes:
    """The lanes of one open file and their bookkeeping with the transport."""

    def __init__(
        self, transport: CommandTransport, path: str, close_lane: Callable[[Lane], Awaitable[None]]
    ):
        self.transport = transport
        self.path = path
        self.lanes: list[Lane] = []
        self._close_lane = close_lane

    def reserve(self, offset: int, length: int) -> Lane:
        """The lane that will run the operation at ``offset`` (a new one if none stands
        there), already moved past it."""
        lane = next((lane for lane in self.lanes if lane.position == offset), None)
        if lane is None:
            lane = Lane(offset)
            self.lanes.append(lane)
        lane.position = offset + length
        lane.pending += 1
        if lane.process is not None:
            self.transport.mark_busy(lane.process)
        return lane

    async def done(self, lane: Lane) -> None:
        """The operation reserved on ``lane`` ended; an unused lane becomes idle."""
        lane.pending -= 1
        if lane.pending == 0 and lane.process is not None:
            await self.transport.mark_idle(lane.process, lambda: self.evict(lane))

    async def evict(self, lane: Lane) -> None:
        async with lane.lock:
            if lane.pending == 0:
                await self.shut(lane)

    async def start(self, lane: Lane, command: str) -> Stream:
        stack = contextlib.AsyncExitStack()
        try:
            process = await stack.enter_async_context(self.transport.stream(command, self.path))
        except BaseException:
            await stack.aclose()
            raise
        lane.process, lane.stack = process, stack
        return process

    async def shut(self, lane: Lane) -> None:
        """Close the lane's process (as the owner says) and give it back to the transport."""
        if lane.process is None:
            return
        self.transport.mark_busy(lane.process)
        try:
            await self._close_lane(lane)
        finally:
            lane.process = None
            stack, lane.stack = lane.stack, None
            if stack is not None:
                await stack.aclose()

    async def shut_all(self) -> None:
        for lane in self.lanes:
            async with lane.lock:
                await self.shut(lane)


@dataclass(slots=True)
class Reported:
    """Progress of a range of a local file read by another process, from the offset of
    the file (which that process shares and moves)."""

    fd: int
    start: int
    size: int
    progress: Callable[[int], None]
    """Told each further number of bytes done."""
    done: int = 0

    def up_to(self, done: int) -> None:
        if done > self.done:
            self.progress(done - self.done)
            self.done = done

    @contextlib.asynccontextmanager
    async def polling(self) -> AsyncIterator[None]:
        """Report every tenth of a second while the block runs."""

        async def poll() -> None:
            while True:
                await asyncio.sleep(0.1)
                position = os.lseek(self.fd, 0, os.SEEK_CUR)
                self.up_to(min(max(position - self.start, 0), self.size))

        task = asyncio.create_task(poll())
        try:
            yield
        finally:
            task.cancel()
            await asyncio.wait([task])


def range_command(path: str, offset: int, size: int) -> str:
    """``dd`` printing ``size`` bytes of the remote file ``path`` from ``offset`` (fewer at
    its end)."""
    ranged = f"iflag=skip_bytes,count_bytes skip={offset} count={size}"
    return f"dd if={quote(path)} {READ_BLOCK} {ranged}"


async def open_local(location: ExecutionLocation, path: str, flags: int) -> int:
    """The local file ``path`` opened (in a worker thread, closed again if the caller was
    cancelled meanwhile); our error if it cannot be."""
    try:
        return await settled(functools.partial(os.open, path, flags), release=os.close)
    except OSError as exc:
        raise local_error(exc, location, path) from exc


def local_error(exc: OSError, location: ExecutionLocation, path: str) -> ConnectorError:
    """Our error for a failure of the local file ``path`` that a transfer to or from
    ``location`` reads or writes."""
    detail = f"the local file {path!r}: {exc.strerror or exc}"
    return error_type(exc.errno or 0)(location, path, detail)
