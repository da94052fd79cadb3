"""Where each destination of one large file stands, chunk by chunk, for resuming.

A chunk's blocks are read in order, each with the running CRC32C of the chunk so far,
but the writers of a destination may finish them out of order. :class:`FileResume` keeps,
per (chunk, destination), the end of the contiguous prefix already written and records it
with its CRC in the journal as it grows. A later run that finds such a mark reads the
chunk from there, starting the CRC from the recorded value, so the file's checksum is
still complete and the commit still verifies every byte.

A run killed before it recorded its last writes left more than its marks say. A
continued writer that can tell gives the digests of what its file holds past them
(:meth:`~streamflow_data.connectors.openfiles.Writer.held_digests`): a block read again
that matches is not sent again.
"""

from __future__ import annotations

import asyncio
import collections
import hashlib

from streamflow_data.connectors.openfiles import Writer
from streamflow_data.transfer.journal import ChunkMark, PriorCopy, RunJournal

__all__ = ["FileResume"]


class FileResume:
    """The resume bookkeeping of one file of a transfer."""

    def __init__(self, journal: RunJournal, relpath: str, chunk_size: int) -> None:
        self._journal = journal
        self._relpath = relpath
        self._chunk_size = chunk_size
        self._marks: dict[int, dict[int, ChunkMark]] = {}
        """Destination index to the chunk marks it starts from in this attempt."""
        self._tracked: set[int] = set()
        """Destinations whose progress is journaled (their writer can be resumed)."""
        self._frontier: dict[tuple[int, int], int] = {}
        self._completed: dict[tuple[int, int], dict[int, int]] = {}
        self._crc_at: dict[int, int] = {}
        self._taken: dict[int, int] = {}
        """Destination index to the bytes its writer took in this attempt."""
        self._waiting: dict[int, collections.deque[tuple[int, int, int]]] = {}
        """Destination index to the (chunk, offset, bytes taken by then) of its prefixes
        not journaled yet: its writer may still have them on the way."""
        self._held: dict[int, dict[int, bytes]] = {}
        """Destination index to the SHA-256 of each block its file holds past its marks,
        by offset."""

    def adopt(self, index: int, prior: PriorCopy) -> int:
        """Start destination ``index`` from the chunks of an earlier run; returns the
        bytes it already holds."""
        self._marks[index] = dict(prior.chunks)
        return sum(mark.done for mark in prior.chunks.values())

    def forget(self, index: int) -> None:
        """Destination ``index`` starts over (its writer was discarded)."""
        self._marks.pop(index, None)
        self._held.pop(index, None)
        self._tracked.discard(index)
        self._taken.pop(index, None)
        self._waiting.pop(index, None)

    async def ask_held(self, index: int, writer: Writer, size: int, block: int) -> None:
        """Ask destination ``index``'s continued ``writer`` what its file holds from the
        first byte its marks miss, by blocks of ``block`` bytes (``size``: the file's)."""
        for number in range(-(-size // self._chunk_size)):
            start = number * self._chunk_size
            first = start + self.done(index, number)
            if first < min(start + self._chunk_size, size):
                digests = await writer.held_digests(first, block)
                self._held[index] = {first + n * block: d for n, d in enumerate(digests)}
                return

    async def holds(self, index: int, offset: int, data: memoryview) -> bool:
        """Whether destination ``index``'s file holds ``data`` at ``offset`` already (as
        told by :meth:`ask_held`)."""
        held = self._held.get(index)
        if not held:  # not a continued file, as for most blocks: nothing to look up
            return False
        digest = held.pop(offset, None)
        return digest is not None and digest == await asyncio.to_thread(_sha256, data)

    def track(self, index: int) -> None:
        """Journal how far destination ``index`` gets."""
        if self._journal.resumable:
            self._tracked.add(index)

    def tracking(self, index: int) -> bool:
        """Whether how far destination ``index`` gets is journaled."""
        return index in self._tracked

    def begin_attempt(self) -> None:
        """Forget the block positions of an earlier attempt."""
        self._frontier.clear()
        self._completed.clear()
        self._crc_at.clear()
        self._taken.clear()
        self._waiting.clear()

    def done(self, index: int, number: int) -> int:
        """Bytes of chunk ``number`` destination ``index`` already holds."""
        mark = self._marks.get(index, {}).get(number)
        return 0 if mark is None else mark.done

    def read_from(self, number: int, indices: list[int]) -> tuple[int, int]:
        """Where reading chunk ``number`` must start for ``indices`` (bytes into the
        chunk) and the CRC32C of the chunk's bytes before that point."""
        start = min((self.done(index, number) for index in indices), default=0)
        if start == 0:
            return 0, 0
        index = next(i for i in indices if self.done(i, number) == start)
        return start, self._marks[index][number].crc

    def read(self, end: int, crc: int) -> None:
        """The chunk's bytes up to file offset ``end`` have CRC32C ``crc``."""
        if self._tracked:
            self._crc_at[end] = crc

    def written(self, index: int, number: int, offset: int, end: int, in_flight: int = 0) -> None:
        """Destination ``index``'s writer took bytes ``offset`` to ``end`` of chunk
        ``number``. Its storage holds all but the last ``in_flight`` bytes the writer took
        (see :attr:`~streamflow_data.connectors.openfiles.Writer.in_flight`): a prefix is
        journaled once that many more have been taken after it."""
        if index not in self._tracked:
            return
        key = (number, index)
        chunk_start = number * self._chunk_size
        frontier = self._frontier.get(key, chunk_start + self.done(index, number))
        completed = self._completed.setdefault(key, {})
        completed[offset] = end
        advanced = frontier
        while advanced in completed:
            advanced = completed.pop(advanced)
        self._frontier[key] = advanced
        taken = self._taken[index] = self._taken.get(index, 0) + end - offset
        waiting = self._waiting.setdefault(index, collections.deque())
        if advanced != frontier:
            waiting.append((number, advanced, taken))
        # A chunk's prefixes wait in the order they grew: each one journaled is longer.
        while waiting and waiting[0][2] <= taken - in_flight:
            held_number, held, _ = waiting.popleft()
            mark = ChunkMark(held - held_number * self._chunk_size, self._crc_at[held])
            self._journal.chunk(self._relpath, index, held_number, mark)


def _sha256(data: memoryview) -> bytes:
    return hashlib.sha256(data).digest()
