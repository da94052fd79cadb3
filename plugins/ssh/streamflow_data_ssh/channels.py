"""One remote process carrying a long byte stream, whichever SSH client runs it.

A lane of :mod:`~streamflow_data_ssh.streams` (a remote ``dd``) needs four things of its
process: send bytes to it (or a range of a local file), receive bytes from it (or into a
local file), end it and hear how it ended, or stop it.
:class:`Stream` is that contract; :class:`AsyncsshStream` runs it on an asyncssh channel
and :class:`OpenSSHStream` on a session of the OpenSSH client
(:mod:`~streamflow_data_ssh.openssh`). Failures of either come out as ``OSError`` or
``asyncssh.Error``, which :func:`~streamflow_data_ssh.remote.translate` turns into ours.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Sequence
from typing import Literal, Protocol

import asyncssh

from streamflow_data_ssh.remote import Buffer, Completed, completed

__all__ = ["SSH_FAILED", "AsyncsshStream", "OpenSSHStream", "Stream"]

_IOV_MAX = os.sysconf("SC_IOV_MAX")
_FILE_BLOCK = 1 << 20
"""Bytes of a local file read at once to be sent, or received at once to be written."""
SSH_FAILED = 255
"""The exit status the ``ssh`` program reports for its own failures (a lost connection)."""


class Stream(Protocol):
    """A remote process with its standard input and output as byte streams."""

    async def send(self, data: Buffer) -> None:
        """Write ``data`` to the process, waiting while the transport is full; ``data``
        may be reused once this returns."""

    async def send_pieces(self, pieces: Sequence[Buffer]) -> None:
        """:meth:`send` each of ``pieces`` in turn, in as few writes as the client allows."""

    async def feed(self, fd: int, size: int) -> None:
        """Give the process the next ``size`` bytes of the open local file ``fd`` (from
        its offset, which moves past them) as input; :class:`EOFError` if it ends before."""

    async def receive_into(self, buffer: memoryview) -> int:
        """Read the process's output into ``buffer``: the count, 0 at its end."""

    async def pour(self, fd: int) -> None:
        """Write all the process's output into the open local file ``fd`` (at its offset,
        which moves past the bytes written)."""

    async def finish(self) -> Completed:
        """End the process's input and wait for it: its status and remaining output."""

    async def stop(self) -> None:
        """End the process without waiting for its output."""


class AsyncsshStream:
    """A :class:`Stream` on an asyncssh channel."""

    def __init__(self, process: asyncssh.SSHClientProcess[bytes]) -> None:
        self._process = process

    async def send(self, data: Buffer) -> None:
        await self.send_pieces([data])

    async def send_pieces(self, pieces: Sequence[Buffer]) -> None:
        for piece in pieces:  # asyncssh keeps what it has not sent yet: no views of ours
            self._process.stdin.write(bytes(piece))
        await self._process.stdin.drain()

    async def feed(self, fd: int, size: int) -> None:
        """Read here and sent: asyncssh encrypts in this process anyway."""
        await _send_file(self, fd, size)

    async def receive_into(self, buffer: memoryview) -> int:
        data = await self._process.stdout.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    async def pour(self, fd: int) -> None:
        """Received here and written: asyncssh decrypts in this process anyway."""
        await _receive_file(self, fd)

    async def finish(self) -> Completed:
        self._process.stdin.write_eof()  # nothing to do on a channel the host closed
        return completed(await self._process.wait())

    async def stop(self) -> None:
        self._process.close()
        with contextlib.suppress(asyncssh.Error, OSError):
            await self._process.wait_closed()


class OpenSSHStream:
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

    async def send(self, data: Buffer) -> None:
        await self.send_pieces([data])

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
            await _send_file(self, fd, size)

    async def receive_into(self, buffer: memoryview) -> int:
        while True:
            if self._output is None:
                raise BrokenPipeError("the stream's output is closed")
            try:
                return os.readv(self._output, [buffer])
            except BlockingIOError:
                await _ready(self._output, writing=False)

    async def pour(self, fd: int) -> None:
        """Nothing to do for a session opened on the file (the master writes it);
        otherwise read here and written."""
        if self._output is not None:
            await _receive_file(self, fd)

    async def finish(self) -> Completed:
        self._close("_input")
        try:
            rest = bytearray()
            chunk = memoryview(bytearray(64 * 1024))
            while self._output is not None and (count := await self.receive_into(chunk)):
                rest += chunk[:count]
            _, stderr = await self._process.communicate()
        finally:
            self._close("_output")
        status = self._process.returncode
        message = stderr.decode(errors="replace")
        if status == SSH_FAILED:
            raise ConnectionAbortedError(f"ssh: {message.strip() or 'the connection failed'}")
        return Completed(status if status is not None else SSH_FAILED, bytes(rest), message)

    async def stop(self) -> None:
        """Close our ends first: the master's next write to the output fails, and it ends
        the session; it would otherwise wait for the output to be read."""
        self._close("_output")
        self._close("_input")
        if self._process.returncode is None:
            self._process.kill()
        await self._process.wait()

    def _close(self, end: Literal["_input", "_output"]) -> None:
        fd = getattr(self, end)
        if fd is not None:
            setattr(self, end, None)
            os.close(fd)


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


async def _send_file(stream: Stream, fd: int, size: int) -> None:
    """Send the next ``size`` bytes of the file ``fd``, read a block at a time in a worker
    thread."""
    left = size
    while left:
        data = await asyncio.to_thread(os.read, fd, min(_FILE_BLOCK, left))
        if not data:
            raise EOFError(f"the file ends {left} bytes early")
        await stream.send(data)
        left -= len(data)


async def _receive_file(stream: Stream, fd: int) -> None:
    """Write all the stream's output into the file ``fd`` (at its offset), a block at a
    time in a worker thread."""
    buffer = memoryview(bytearray(_FILE_BLOCK))
    while count := await stream.receive_into(buffer):
        await asyncio.to_thread(_write_all, fd, buffer[:count])


def _write_all(fd: int, data: bytes | memoryview) -> None:
    """Write all of ``data`` at the file's offset (blocking: in a worker thread)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
