"""The bytes a writer holds before sending them, gathered in reused buffers.

Each part is gathered in place in a ``bytearray``, which its request then sends as it is
(botocore hashes and aiohttp sends a ``bytearray`` without copying it, where ``bytes``
are first wrapped in a ``BytesIO`` that both copy). Once the server has accepted the
part, its buffer comes back (:meth:`PartBuffer.recycle`) to gather a later part, so the
memory is mapped once: fresh memory page-faults every 4 KiB, which costs more than the
copy it holds. A small object's buffer only grows as big as the object.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

__all__ = ["PartBody", "PartBuffer"]


class PartBuffer:
    """Bytes given and not sent yet: the part being gathered, then what a write brought
    beyond a full part."""

    def __init__(self, part_size: int) -> None:
        self._part_size = part_size
        self._data = bytearray()
        self._filled = 0
        self._beyond: list[bytes] = []
        self._spare: list[bytearray] = []

    @property
    def size(self) -> int:
        """Bytes held."""
        return self._filled + sum(map(len, self._beyond))

    @property
    def full(self) -> bool:
        """A whole part is gathered."""
        return self._filled == self._part_size

    def add(self, data: bytes | bytearray | memoryview) -> None:
        """Copy ``data`` in (the caller may reuse its own buffer afterwards)."""
        view = memoryview(data).cast("B")
        if self._beyond:
            self._beyond.append(bytes(view))
            return
        room = self._part_size - self._filled
        chunk, rest = view[:room], view[room:]
        end = self._filled + len(chunk)
        self._data[self._filled : end] = chunk  # grows the buffer until it is part-sized
        self._filled = end
        if rest:
            self._beyond.append(bytes(rest))

    def take_part(self) -> bytearray:
        """The full part gathered, which the caller may hold until it gives it back with
        :meth:`recycle`; gathering starts again in another buffer."""
        assert self.full
        part = self._data
        self._data = self._spare.pop() if self._spare else bytearray()
        beyond, self._beyond = self._beyond, []
        self._filled = 0
        for data in beyond:
            self.add(data)
        return part

    def recycle(self, part: bytearray, in_flight: int) -> None:
        """Take back a part from :meth:`take_part` that nothing reads any more (its
        request answered), to gather a later part in.

        At most ``in_flight`` (the writer's parts being sent, this one included) are
        kept: enough that a part finds one when its turn comes, and a writer holds at
        most twice its parts in flight, plus the part it gathers."""
        if len(self._spare) < in_flight and len(part) == self._part_size:
            self._spare.append(part)

    def held(self) -> bytes:
        """The bytes held."""
        return bytes(memoryview(self._data)[: self._filled]) + b"".join(self._beyond)

    def take_all(self) -> bytes:
        """Every byte held, which the buffer then forgets, memory included."""
        taken = self.held()
        self._data, self._filled, self._beyond, self._spare = bytearray(), 0, [], []
        return taken

    def keep(self, size: int) -> bytes:
        """Forget every byte held after the first ``size``; returns those kept."""
        kept = self.held()[:size]
        self._filled, self._beyond = 0, []
        self.add(kept)
        return kept


class PartBody:
    """A part as a request body that neither botocore nor aiohttp copies.

    botocore takes any object with ``read`` for a body, and reads it through to hash it
    for the signature (``seek`` and ``tell`` put it back); aiohttp sends an asynchronous
    iterable chunk by chunk. Both get views of the part's one buffer, where ``bytes``
    would be wrapped in a ``BytesIO`` that copies them twice more and a ``bytearray``
    copied once more and joined with the request's headers.
    """

    chunk_size = 1024 * 1024
    """Bytes per view: what aiohttp writes before waiting for the socket to drain."""

    def __init__(self, data: bytes | bytearray) -> None:
        self._view = memoryview(data)
        self._position = 0

    def __len__(self) -> int:
        return len(self._view)

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        base = {os.SEEK_SET: 0, os.SEEK_CUR: self._position, os.SEEK_END: len(self._view)}
        self._position = min(max(base[whence] + offset, 0), len(self._view))
        return self._position

    def read(self, size: int = -1) -> memoryview:
        end = len(self._view) if size < 0 else min(self._position + size, len(self._view))
        chunk = self._view[self._position : end]
        self._position = end
        return chunk

    async def __aiter__(self) -> AsyncIterator[memoryview]:
        while chunk := self.read(self.chunk_size):
            yield chunk
