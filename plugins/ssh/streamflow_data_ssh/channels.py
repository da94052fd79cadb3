"""One remote process carrying a long byte stream, whichever SSH client runs it.

:class:`AsyncsshStream` runs a :class:`~streamflow_data.shell.Stream` on an asyncssh
channel and :class:`OpenSSHStream` on a session of the OpenSSH client
(:mod:`~streamflow_data_ssh.openssh`). Failures of either come out as ``OSError`` or
``asyncssh.Error``; :class:`TranslatedStream`, which the pool hands out, turns them into
ours.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import select
from collections.abc import Callable, Sequence
from typing import Literal, TypeVar, cast

import asyncssh

from streamflow_data.sdk import ExecutionLocation
from streamflow_data.shell import Buffer, Completed, Stream
from streamflow_data_ssh.failures import translating

T = TypeVar("T")

__all__ = [
    "SEND_SLICE",
    "SSH_FAILED",
    "AsyncsshStream",
    "OpenSSHStream",
    "TranslatedStream",
    "completed",
    "send_in_slices",
]

_IOV_MAX = os.sysconf("SC_IOV_MAX")
SEND_SLICE = 256 * 1024
"""Bytes handed to an asyncssh channel at a time (it buffers a copy until sent)."""
SSH_FAILED = 255
"""The exit status the ``ssh`` program reports for its own failures (a lost connection)."""


async def send_in_slices(stdin: asyncssh.SSHWriter[bytes], pieces: Sequence[Buffer]) -> None:
    """Write ``pieces`` to an asyncssh channel. asyncssh copies what it is given into its
    send buffer: handing it a block in slices, each drained before the next, bounds that
    copy by the slice, where a whole block per channel had a busy service hold twice its
    block pool. The slices are views: asyncssh's copy is the only one (it takes any buffer,
    though typed for bytes)."""
    for piece in pieces:
        view = memoryview(piece).cast("B")
        for start in range(0, len(view), SEND_SLICE):
            stdin.write(cast(bytes, view[start : start + SEND_SLICE]))
            await stdin.drain()


def completed(result: asyncssh.SSHCompletedProcess) -> Completed:
    """Our record of what asyncssh returned for a command run without an encoding."""
    stdout = result.stdout if isinstance(result.stdout, bytes) else b""
    stderr = result.stderr if isinstance(result.stderr, bytes) else b""
    status = result.exit_status if result.exit_status is not None else 255
    return Completed(status, stdout, stderr.decode(errors="replace"))


class AsyncsshStream(Stream):
    """A :class:`Stream` on an asyncssh channel: the bytes of local files pass through
    here (:meth:`feed` and :meth:`pour` as inherited), as asyncssh encrypts in this
    process anyway."""

    def __init__(self, process: asyncssh.SSHClientProcess[bytes]) -> None:
        self._process = process

    async def send_pieces(self, pieces: Sequence[Buffer]) -> None:
        await send_in_slices(self._process.stdin, pieces)

    async def receive_into(self, buffer: memoryview) -> int:
        data = await self._process.stdout.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    async def finish(self) -> Completed:
        self._process.stdin.write_eof()  # nothing to do on a channel the host closed
        return completed(await self._process.wait())

    async def stop(self) -> None:
        self._process.close()
        with contextlib.suppress(asyncssh.Error, OSError):
            await self._process.wait_closed()


class OpenSSHStream(Stream):
    """A :class:`Stream` on a local ``ssh`` process (a session of the node's master).

    Its input and output are non-blocking pipes of our own, written from and read into
    the caller's buffers when the loop says they are ready: no copy on the way, and
    :meth:`stop` can close them (the master holds their other ends: ssh hands them over).
    Either is None when the session was opened on a local file instead (the master reads
    or writes it).
    """

    def __init__(
        self, process: asyncio.subprocess.Process, input: int | None, output: int | None
    ) -> None:
        self._process = process
        self._input: int | None = input
        self._output: int | None = output
        self.spare = False
        """Whether it runs in a spare session of the master, started before its command."""

    @property
    def running(self) -> bool:
        """Whether its ``ssh`` process has not exited, nor closed our output pipe's other
        end (which it does as it exits, before the loop learns of its exit)."""
        return self._process.returncode is None and not (
            self._output is not None and _hung_up(self._output)
        )

    async def send_pieces(self, pieces: Sequence[Buffer]) -> None:
        views = [view for piece in pieces if (view := memoryview(piece).cast("B"))]
        start = 0
        while start < len(views):
            if self._input is None:
                raise BrokenPipeError("the stream's input is closed")
            try:
                written = os.writev(self._input, views[start : start + _IOV_MAX])
            except BlockingIOError:
                await _ready(self._input, writing=True)
                continue
            while written and written >= len(views[start]):
                written -= len(views[start])
                start += 1
            if written:
                views[start] = views[start][written:]

    async def feed(self, fd: int, size: int) -> None:
        """Nothing to do for a session opened on the file (the master reads it); otherwise
        read here and sent."""
        if self._input is not None:
            await super().feed(fd, size)

    async def receive_into(self, buffer: memoryview) -> int:
        return await self._reading(lambda fd: os.readv(fd, [buffer]))

    async def _reading(self, read: Callable[[int], T]) -> T:
        """``read`` of the output, once the pipe holds something."""
        while True:
            if self._output is None:
                raise BrokenPipeError("the stream's output is closed")
            try:
                return read(self._output)
            except BlockingIOError:
                await _ready(self._output, writing=False)

    async def pour(self, fd: int) -> None:
        """Nothing to do for a session opened on the file (the master writes it);
        otherwise read here and written."""
        if self._output is not None:
            await super().pour(fd)

    async def finish(self) -> Completed:
        self._close("_input")
        try:
            # Whatever the pipe holds, read as it comes and joined once: a batch's archive
            # is megabytes, which growing one buffer would copy over and over.
            parts = []
            while self._output is not None and (part := await self._reading(_read_all)):
                parts.append(part)
            _, stderr = await self._process.communicate()
        finally:
            self._close("_output")
        status = self._process.returncode
        message = stderr.decode(errors="replace")
        if status == SSH_FAILED:
            raise ConnectionAbortedError(f"ssh: {message.strip() or 'the connection failed'}")
        return Completed(status if status is not None else SSH_FAILED, b"".join(parts), message)

    async def stop(self) -> None:
        """:meth:`kill`, then wait for the exit: asyncio reports it once the standard
        error's pipe has closed too, whose other end the master holds until the host has
        closed the session (a session still logging in: once its login shell is done)."""
        self.kill()
        await self._process.wait()

    def kill(self) -> None:
        """Close our ends first: the master's next write to the output fails, and it ends
        the session; it would otherwise wait for the output to be read. Then kill ``ssh``;
        :meth:`close_ended` waits for it."""
        self._close("_output")
        self._close("_input")
        if self._process.returncode is None:
            self._process.kill()

    async def close_ended(self) -> None:
        """Close a stream whose ``ssh`` exited or is exiting (not :attr:`running`): its
        pipes closed and its exit waited for, without a signal, which would collect the
        exit before the loop does (asyncio then warns of an unknown child)."""
        self._close("_output")
        self._close("_input")
        await self._process.wait()

    def _close(self, end: Literal["_input", "_output"]) -> None:
        fd = getattr(self, end)
        if fd is not None:
            setattr(self, end, None)
            os.close(fd)


def _read_all(fd: int) -> bytes:
    """What the pipe ``fd`` holds (it holds at most 1 MiB: see ``openssh._widen``)."""
    return os.read(fd, 1 << 20)


def _hung_up(fd: int) -> bool:
    """Whether the other end of the pipe ``fd`` reads from is closed."""
    poll = select.poll()
    poll.register(fd, select.POLLIN)
    return any(events & (select.POLLHUP | select.POLLERR) for _, events in poll.poll(0))


async def _ready(fd: int, *, writing: bool) -> None:
    """Wait until the loop says ``fd`` can be written (or read) without blocking."""
    loop = asyncio.get_running_loop()
    ready = loop.create_future()
    watch, unwatch = (
        (loop.add_writer, loop.remove_writer) if writing else (loop.add_reader, loop.remove_reader)
    )
    watch(fd, ready.set_result, None)
    try:
        await ready
    finally:
        unwatch(fd)


class TranslatedStream(Stream):
    """A stream of either client whose failures come out as our errors, naming the
    location and the path the command works on (see :func:`.translate`)."""

    def __init__(self, stream: Stream, location: ExecutionLocation, path: str) -> None:
        self.inner = stream
        """The client's stream."""
        self._location, self._path = location, path

    async def send_pieces(self, pieces: Sequence[Buffer]) -> None:
        with translating(self._location, self._path):
            await self.inner.send_pieces(pieces)

    async def receive_into(self, buffer: memoryview) -> int:
        with translating(self._location, self._path):
            return await self.inner.receive_into(buffer)

    async def finish(self) -> Completed:
        with translating(self._location, self._path):
            return await self.inner.finish()

    async def stop(self) -> None:
        with contextlib.suppress(asyncssh.Error, OSError):
            await self.inner.stop()

    async def feed(self, fd: int, size: int) -> None:
        with translating(self._location, self._path):
            await self.inner.feed(fd, size)

    async def pour(self, fd: int) -> None:
        with translating(self._location, self._path):
            await self.inner.pour(fd)
