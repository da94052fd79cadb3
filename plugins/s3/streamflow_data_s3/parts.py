"""The bytes a writer holds before sending them, gathered in one reused buffer.

Each part is gathered in place in one ``bytearray`` per writer, then copied once into the
``bytes`` its request sends; the buffer gathers the next part in the same memory. Joining
the engine's blocks instead cost two copies per part, each into freshly mapped memory
that page-faults every 4 KiB. A small object's buffer only grows as big as the object.
"""

from __future__ import annotations

__all__ = ["PartBuffer"]


class PartBuffer:
    """Bytes given and not sent yet: the part being gathered, then what a write brought
    beyond a full part."""

    def __init__(self, part_size: int) -> None:
        self._part_size = part_size
        self._data = bytearray()
        self._filled = 0
        self._beyond: list[bytes] = []

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

    def take_part(self) -> bytes:
        """The full part gathered; gathering starts again."""
        assert self.full
        part = bytes(self._data)
        beyond, self._beyond = self._beyond, []
        self._filled = 0
        for data in beyond:
            self.add(data)
        return part

    def held(self) -> bytes:
        """The bytes held."""
        return bytes(memoryview(self._data)[: self._filled]) + b"".join(self._beyond)

    def take_all(self) -> bytes:
        """Every byte held, which the buffer then forgets, memory included."""
        taken = self.held()
        self._data, self._filled, self._beyond = bytearray(), 0, []
        return taken

    def keep(self, size: int) -> bytes:
        """Forget every byte held after the first ``size``; returns those kept."""
        kept = self.held()[:size]
        self._filled, self._beyond = 0, []
        self.add(kept)
        return kept
