"""Blocking calls in worker threads are over when a cancelled caller moves on."""

from __future__ import annotations

import asyncio
import errno
import fcntl
import os
import termios
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from streamflow_data import ExecutionLocation
from streamflow_data.shell import Buffer, Completed, Stream
from streamflow_data.shell.lanes import open_local
from streamflow_data.threads import settled
from tests.helpers import cancel_blocked_open


@pytest.mark.parametrize("cancels", [1, 3])
async def test_a_cancelled_call_is_waited_for_and_its_outcome_dropped(cancels: int) -> None:
    """The cancellation reaches the caller only once the call has returned (here with an
    error, which the caller does not get), however often the caller is cancelled."""
    started, release = threading.Event(), threading.Event()
    returned: list[float] = []

    def call() -> None:
        started.set()
        release.wait(10)
        returned.append(time.monotonic())
        raise OSError(errno.EIO, "too late")

    task = asyncio.create_task(settled(call))
    assert await asyncio.to_thread(started.wait, 10)
    for _ in range(cancels):
        task.cancel()
        await asyncio.sleep(0.1)
        assert not task.done()
    release.set()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert len(returned) == 1


async def test_settled_returns_the_result_and_raises_the_error_of_the_call() -> None:
    assert await settled(lambda: 42) == 42
    with pytest.raises(ZeroDivisionError):
        await settled(lambda: 1 // 0)


async def test_what_a_cancelled_call_returned_is_released_in_a_thread() -> None:
    """A call that returns once its caller is cancelled hands its result to ``release``
    (a descriptor to close, say), in a worker thread, before the cancellation goes on."""
    started, finish = threading.Event(), threading.Event()
    released: list[tuple[str, bool]] = []

    def call() -> str:
        started.set()
        finish.wait(10)
        return "opened"

    def release(result: str) -> None:
        released.append((result, threading.current_thread() is threading.main_thread()))

    task = asyncio.create_task(settled(call, release=release))
    assert await asyncio.to_thread(started.wait, 10)
    task.cancel()
    await asyncio.sleep(0.1)
    finish.set()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert released == [("opened", False)]
    assert await settled(lambda: "kept", release=release) == "kept"
    assert len(released) == 1


async def test_a_cancelled_open_of_a_local_file_leaves_no_descriptor(tmp_path: Path) -> None:
    """The shell connectors open local files in a worker thread: opening a FIFO to write
    blocks until a reader comes, and a transfer cancelled meanwhile must not keep the
    descriptor that the open returns afterwards."""
    fifo = tmp_path / "fifo"
    await asyncio.to_thread(os.mkfifo, fifo)
    here = ExecutionLocation("local", "localhost", local=True)
    opening = asyncio.create_task(open_local(here, str(fifo), os.O_WRONLY))
    await cancel_blocked_open(opening, fifo, os.O_RDONLY | os.O_NONBLOCK)


class _Endless(Stream):
    """A stream whose output never ends: a megabyte of ``x`` at every read."""

    async def send_pieces(self, pieces: Sequence[Buffer]) -> None:
        raise NotImplementedError

    async def receive_into(self, buffer: memoryview) -> int:
        buffer[:] = b"x" * len(buffer)
        return len(buffer)

    async def finish(self) -> Completed:
        raise NotImplementedError

    async def stop(self) -> None:
        raise NotImplementedError


def _fill(fd: int) -> int:
    """Bytes waiting in the FIFO ``fd``."""
    return int.from_bytes(fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0"), "little")


async def test_a_cancelled_pour_stops_writing_the_file_before_it_returns(tmp_path: Path) -> None:
    """:meth:`Stream.pour` writes in a worker thread; cancelled while a write is blocked
    (a FIFO that nobody reads), it returns only once that write is over, so that its
    caller may close the file; and nothing is written after."""
    fifo = tmp_path / "fifo"
    await asyncio.to_thread(os.mkfifo, fifo)
    sink = await asyncio.to_thread(os.open, fifo, os.O_RDWR)  # opening never waits
    drain = await asyncio.to_thread(os.open, fifo, os.O_RDONLY | os.O_NONBLOCK)
    pour = asyncio.create_task(_Endless().pour(sink))
    try:
        for _ in range(100):  # until the FIFO is full and the write blocks
            await asyncio.sleep(0.02)
            if _fill(drain) >= 64 * 1024:
                break
        pour.cancel()
        await asyncio.sleep(0.2)
        assert not pour.done()
    finally:
        drained = 0
        for _ in range(1000):  # the rest of the blocked megabyte, then nothing
            try:
                drained += len(await asyncio.to_thread(os.read, drain, 1 << 20))
            except BlockingIOError:
                if pour.done():
                    break
                await asyncio.sleep(0.01)
        with pytest.raises(asyncio.CancelledError):
            await pour
        await asyncio.sleep(0.1)
        assert _fill(drain) == 0
        os.close(sink)
        os.close(drain)
    assert drained == 1 << 20  # the blocked write, whole, and none after
