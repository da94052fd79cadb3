"""What the shell connector needs of a way to reach a host: run a command there.

A :class:`CommandTransport` runs command lines of a POSIX shell on one location, to their
end (:meth:`~CommandTransport.run`) or as a :class:`Stream` whose standard input and
output this process reads and writes (:meth:`~CommandTransport.stream`). SSH is one (the
``ssh`` plugin: asyncssh channels and sessions of an OpenSSH master); a container's
``exec`` or a batch system's job shell would be others. Everything a connector does with
those commands is :class:`~streamflow_data.shell.connector.ShellConnector`'s, written
once for all of them.

Both sides raise :class:`~streamflow_data.errors.ConnectorError` only: a transport
translates its own failures (a dropped connection is a
:class:`~streamflow_data.errors.LocationUnreachableError`) where they happen.
"""

from __future__ import annotations

import abc
import contextlib
import functools
import os
from collections.abc import Awaitable, Callable, Sequence

from streamflow_data.location import ExecutionLocation
from streamflow_data.shell.commands import Buffer, Completed, command_error
from streamflow_data.threads import settled

__all__ = ["Closer", "CommandTransport", "Stream"]

_FILE_BLOCK = 1 << 20
"""Bytes of a local file read at once to be sent, or received at once to be written."""


class Stream(abc.ABC):
    """A running command with its standard input and output as byte streams.

    A transport implements the four abstract methods; :meth:`feed` and :meth:`pour`, which
    move a range of a local file through this process, are overridden where the transport
    can hand the file to the process instead (see
    :attr:`CommandTransport.hands_over_files`).
    """

    @abc.abstractmethod
    async def send_pieces(self, pieces: Sequence[Buffer]) -> None:
        """Write each of ``pieces`` to the process in turn, waiting while the transport is
        full; they may be reused once this returns."""

    @abc.abstractmethod
    async def receive_into(self, buffer: memoryview) -> int:
        """Read the process's output into ``buffer``: the count, 0 at its end."""

    @abc.abstractmethod
    async def finish(self) -> Completed:
        """End the process's input and wait for it: its status and remaining output."""

    @abc.abstractmethod
    async def stop(self) -> None:
        """End the process without waiting for its output; never raises."""

    async def send(self, data: Buffer) -> None:
        """:meth:`send_pieces` of one piece."""
        await self.send_pieces([data])

    async def feed(self, fd: int, size: int) -> None:
        """Give the process the next ``size`` bytes of the open local file ``fd`` (from
        its offset, which moves past them) as input; :class:`EOFError` if it ends before.
        Read here a block at a time, in a worker thread (waited for when cancelled: the
        caller closes the file)."""
        left = size
        while left:
            data = await settled(functools.partial(os.read, fd, min(_FILE_BLOCK, left)))
            if not data:
                raise EOFError(f"the file ends {left} bytes early")
            await self.send(data)
            left -= len(data)

    async def pour(self, fd: int) -> None:
        """Write all the process's output into the open local file ``fd`` (at its offset,
        which moves past the bytes written), a block at a time in a worker thread."""
        buffer = memoryview(bytearray(_FILE_BLOCK))
        while count := await self.receive_into(buffer):
            await settled(functools.partial(_write_all, fd, buffer[:count]))


Closer = Callable[[], Awaitable[None]]
"""Closes an idle stream to free what it holds (see :meth:`CommandTransport.mark_idle`)."""


class CommandTransport(abc.ABC):
    """Commands on one location: the one thing a host reached through a shell needs.

    Each command is a line for a POSIX shell with GNU coreutils, ``find`` and ``tar``,
    which the transport runs as ``sh -c`` would, after
    :func:`~streamflow_data.shell.commands.in_c_locale`. Paths given
    with a command only name it in errors.
    """

    def __init__(self, location: ExecutionLocation) -> None:
        self.location = location

    @property
    def hands_over_files(self) -> bool:
        """Whether :meth:`Stream.feed` and :meth:`Stream.pour` give the local file to the
        process itself (as ``ssh`` reads and writes its own standard input and output), so
        that its bytes never pass through this process. False by default."""
        return False

    @abc.abstractmethod
    async def run(
        self, command: str, path: str, data: Buffer | Sequence[Buffer] = b""
    ) -> Completed:
        """Run ``command`` to its end with ``data`` (or its pieces, in turn) as its input."""

    async def run_for_output(self, command: str, path: str) -> Completed:
        """Run ``command``, with no input, for an output that may be large (a ``tar c`` of
        many files): a transport may carry it on a faster path than :meth:`run`'s. By
        default :meth:`run`."""
        return await self.run(command, path)

    @abc.abstractmethod
    def stream(
        self, command: str, path: str, *, stdin: int | None = None, stdout: int | None = None
    ) -> contextlib.AbstractAsyncContextManager[Stream]:
        """``command`` running for the block, as a :class:`Stream`; stopped on the way out
        if it still runs. ``stdin`` or ``stdout``, an open local file, is the one the
        stream's :meth:`~Stream.feed` or :meth:`~Stream.pour` will be given: a transport
        that :attr:`hands_over_files` passes it to the process."""

    async def check(self, command: str, path: str, data: bytes = b"", what: str = "") -> bytes:
        """Run ``command`` and return its output; a failure raises our error for it (see
        :func:`~streamflow_data.shell.commands.command_error`)."""
        result = await self.run(command, path, data)
        if result.status != 0:
            raise command_error(result, self.location, path, what)
        return result.stdout

    async def mark_idle(self, stream: Stream, closer: Closer) -> None:  # noqa: B027 - optional
        """``stream`` is open but unused: a transport with a limit on running commands may
        call ``closer`` to close it and make room. The default keeps it open."""

    def mark_busy(self, stream: Stream) -> None:  # noqa: B027 - optional
        """``stream`` is in use again (or closed): it may not be closed for room."""

    def chunk_streams(self) -> int | None:
        """How many streams of one file are worth running at once (see
        :meth:`~streamflow_data.connectors.base.Connector.chunk_streams`); None leaves it
        to the engine."""
        return None

    def batch_streams(self) -> int | None:
        """How many batches of small files are worth reading, or writing, at once (see
        :meth:`~streamflow_data.connectors.base.Connector.batch_streams`); None leaves it
        to the engine."""
        return None

    async def warm_up(self) -> None:  # noqa: B027 - optional: most transports connect at once
        """Open what the first command would wait for (see
        :meth:`~streamflow_data.connectors.base.Connector.warm_up`); by default nothing."""

    async def close(self) -> None:  # noqa: B027 - optional: most transports hold connections
        """Release connections and processes; the transport is unusable afterwards."""


def _write_all(fd: int, data: Buffer) -> None:
    """Write all of ``data`` at the file's offset (blocking: in a worker thread)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
