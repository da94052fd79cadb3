"""Reading a stored file back through its connector to hash it: what SHA-256 verification
and validated deliveries check, independently of how the bytes were written."""

from __future__ import annotations

import asyncio
from typing import Protocol

from streamflow_data.connectors.base import Connector
from streamflow_data.model import ExecutionLocation

__all__ = ["Hasher", "read_back"]


class Hasher(Protocol):
    """What a file's bytes are fed to: a ``hashlib`` object or a running CRC."""

    def update(self, data: bytes, /) -> None: ...


async def read_back(
    connector: Connector,
    location: ExecutionLocation,
    path: str,
    hasher: Hasher,
    block_size: int,
) -> int:
    """Feed the bytes stored at ``path`` to ``hasher``, hashed in a worker thread one
    block at a time (memory: one block); returns their number."""
    size = 0
    async with await connector.open_reader(location, path) as reader:
        while data := await reader.read(size, block_size):
            size += len(data)
            await asyncio.to_thread(hasher.update, bytes(data))
    return size
