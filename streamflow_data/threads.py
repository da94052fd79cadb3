"""Blocking calls run in worker threads, over by the time their caller moves on.

asyncio's ``to_thread`` and ``run_in_executor`` return at once when the caller is
cancelled, while the call goes on in its thread. A call that writes into a buffer, or to
a descriptor, that its caller then gives back would write into whatever they hold next: a
block of the engine's pool is lent to the next read at once, and POSIX gives the number
of a closed descriptor to the next ``open``. :func:`settled` waits for the call instead,
so that a cancelled transfer has stopped writing when its cancellation returns, and
releases what a cancelled call opened.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any, TypeVar

__all__ = ["settled"]

T = TypeVar("T")


async def settled(
    call: Callable[[], T],
    executor: Executor | None = None,
    *,
    release: Callable[[T], object] | None = None,
) -> T:
    """``call``'s result, from a thread of ``executor`` (asyncio's default one when
    None). When the caller is cancelled, ``call`` is still waited for, through further
    cancellations, before the cancellation goes on; what it raised is dropped, and what
    it returned is given to ``release`` (in a thread, waited for likewise): a call that
    opens a descriptor passes ``os.close``, since its caller will never see it."""
    loop = asyncio.get_running_loop()
    running = loop.run_in_executor(executor, call)
    try:
        return await asyncio.shield(running)
    except asyncio.CancelledError:
        await _outlast(running)
        if release is not None and not running.cancelled() and running.exception() is None:
            await _outlast(loop.run_in_executor(executor, release, running.result()))
        raise


async def _outlast(future: asyncio.Future[Any]) -> None:
    """Wait for ``future`` however often the caller is cancelled meanwhile; its error is
    retrieved and dropped."""
    while not future.done():
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait([future])
    if not future.cancelled():
        future.exception()
