"""Bounded block buffers: the only memory file data occupies during a transfer.

A :class:`BlockPool` hands out at most ``count`` :class:`BufferBlock` of ``size`` bytes.
A reader acquires a block, fills it, and the block goes to every destination writer; it
returns to the pool when the last writer is done with it. When every block is taken,
:meth:`BlockPool.acquire` waits: readers stop until writers catch up (back-pressure, as
Arvados' bounded put queue gives). Memory is therefore bounded by ``count x size``,
whatever the file sizes and the number of destinations. Data held in memory elsewhere (a
small file or a batch read whole into bytes) takes a place with :meth:`BlockPool.reserve`
instead of a block, under the same bound.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Iterable

__all__ = ["BlockPool", "BlockState", "BufferBlock"]


class BlockState(enum.Enum):
    """Where a block is in its life."""

    WRITABLE = "writable"
    """Held by a reader that fills it."""
    PENDING = "pending"
    """Filled; being written to the destinations."""
    COMMITTED = "committed"
    """Written everywhere; back in the pool."""
    ERROR = "error"
    """A destination write failed; it becomes PENDING again if the write is retried."""


class BufferBlock:
    """A fixed-size buffer, the range of the file it holds, and who still needs it."""

    __slots__ = ("buffer", "holders", "length", "offset", "state", "tag")

    def __init__(self, size: int) -> None:
        self.buffer = memoryview(bytearray(size))
        """The whole buffer."""
        self.offset = 0
        """The file offset of the data held."""
        self.length = 0
        """Bytes of data held."""
        self.state = BlockState.COMMITTED
        self.holders = 0
        """Destinations that have yet to write it."""
        self.tag = 0
        """The number of the chunk it belongs to."""

    @property
    def data(self) -> memoryview:
        """The data held."""
        return self.buffer[: self.length]


class BlockPool:
    """At most ``count`` blocks of ``size`` bytes, allocated on first use."""

    def __init__(self, count: int, size: int) -> None:
        self.count = count
        self.size = size
        self._free: list[BufferBlock] = []
        self._held = 0
        self._available = asyncio.Semaphore(count)
        self.peak_in_use = 0
        """The most blocks and reserved places ever held at once (for tests and
        statistics)."""

    @property
    def in_use(self) -> int:
        """Blocks and reserved places currently held."""
        return self._held

    async def acquire(self) -> BufferBlock:
        """A WRITABLE block; waits while all ``count`` blocks are held."""
        await self.reserve()  # a place, then its block
        block = self._free.pop() if self._free else BufferBlock(self.size)
        block.state = BlockState.WRITABLE
        block.offset = block.length = block.holders = block.tag = 0
        return block

    async def reserve(self) -> None:
        """Take a place for up to ``size`` bytes held outside the pool's blocks (a whole
        small file, a batch); waits as :meth:`acquire` does. No buffer is allocated: the
        data has its own, and a fresh process would otherwise zero a block per place."""
        await self._available.acquire()
        self._held += 1
        self.peak_in_use = max(self.peak_in_use, self._held)

    def unreserve(self) -> None:
        """Give back a place taken with :meth:`reserve`."""
        self._held -= 1
        self._available.release()

    def release(self, block: BufferBlock) -> None:
        """Give a block back (its data is no longer needed)."""
        block.state = BlockState.COMMITTED
        self._free.append(block)
        self.unreserve()  # the block's place

    def let_go(self, block: BufferBlock) -> None:
        """One of the block's holders is done with it; the last one gives it back."""
        block.holders -= 1
        if block.holders == 0:
            self.release(block)

    def let_go_queued(self, queues: Iterable[asyncio.Queue[BufferBlock | None]]) -> None:
        """Let go of the blocks still waiting in ``queues`` for a writer that will not
        take them (a cancelled copy): the pool outlives the transfer."""
        for queue in queues:
            while not queue.empty():
                if (block := queue.get_nowait()) is not None:
                    self.let_go(block)
