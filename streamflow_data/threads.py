"""Blocking calls run in worker threads, over by the time their caller moves on.

asyncio's ``to_thread`` and ``run_in_executor`` return at once when the caller is
cancelled, while the call goes on in its thread. A call that writes into a buffer, or to
a descriptor, that its caller then gives back would write into whatever they hold next: a
block of the engine's pool is lent to the next read at once, and POSIX gives the number
of a closed descriptor to the next ``open``. :func:`settled` waits for the call instead,
so that a cancelled transfer has stopped writing when its cancellation returns.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import Executor
from typing import TypeVar

__all__ = ["settled"]

T = TypeVar("T")


async def settled(call: Callable[[], T], executor: Executor | None = None) -> T:
    """``call``'s result, from a thread of ``executor`` (asyncio's default one when
    None). When the caller is cancelled, ``call`` is still waited for before the
    cancellation goes on, and what it returned or raised is dropped."""
    running = asyncio.get_running_loop().run_in_executor(executor, call)
    try:
        return await asyncio.shield(running)
    except asyncio.CancelledError:
        await asyncio.wait([running])
        if not running.cancelled():
            running.exception()  # retrieved: the caller gets the cancellation
        raise
