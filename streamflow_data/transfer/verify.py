"""SHA-256 verification of a transfer's files (``checksum = "sha256"``).

The in-stream CRC32C proves that each destination stored the bytes the engine sent. With
SHA-256, once every file is copied, the engine also reads each one back, from the source
once and from every destination, and compares cryptographic hashes: end to end, whatever
the storage did, before a staged tree is published. It costs one more read of the source
and one of each copy; files are hashed ``max_concurrent_files`` at a time, a block at a
time, in worker threads. A copy that differs is removed and its destination fails with
:class:`~streamflow_data.errors.ChecksumMismatchError`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
from collections.abc import Awaitable, Callable, Iterable

from streamflow_data.connectors.base import Connector, WalkEntry
from streamflow_data.errors import ChecksumMismatchError, StreamFlowDataError
from streamflow_data.model import ExecutionLocation
from streamflow_data.transfer.context import Destination, RunContext
from streamflow_data.transfer.plan import join
from streamflow_data.transfer.readback import read_back
from streamflow_data.transfer.state import FileState

__all__ = ["Sha256Verification"]


class Sha256Verification:
    """The SHA-256 check of one run: the source's hashes, then each destination's."""

    def __init__(self, context: RunContext, src_path: str) -> None:
        self._context = context
        self._src_path = src_path
        self._expected: dict[str, str] = {}

    async def hash_sources(self, files: Iterable[WalkEntry]) -> None:
        """Hash the source of every file some destination received."""
        source = self._context.source

        async def hash_one(entry: WalkEntry) -> None:
            path = join(self._src_path, entry.relpath)
            digest = await self._hash(source.connector, source.location, path)
            self._expected[entry.relpath] = digest

        await self._bounded(files, hash_one)

    async def check(self, destination: Destination, files: Iterable[WalkEntry]) -> None:
        """Compare each of ``files`` stored at ``destination`` with its source; the first
        copy that differs is removed and raised as a mismatch."""
        connector, location = destination.connector, destination.location

        async def check_one(entry: WalkEntry) -> None:
            path = destination.target(entry.relpath)
            found = await self._hash(connector, location, path)
            expected = self._expected[entry.relpath]
            if found == expected:
                return
            self._context.files[(entry.relpath, destination.index)] = FileState.INVALID
            with contextlib.suppress(StreamFlowDataError):
                await connector.remove(location, path)
            detail = f"sha256 {found} read back, the source's is {expected}; removed"
            raise ChecksumMismatchError(location, path, detail)

        await self._bounded(files, check_one)

    async def _hash(self, connector: Connector, location: ExecutionLocation, path: str) -> str:
        sha256 = hashlib.sha256()
        context = self._context
        started = time.monotonic()
        async with context.sessions.slot(location):
            size = await read_back(connector, location, path, sha256, context.settings.block_size)
        context.stats.read(location, size, time.monotonic() - started)
        return sha256.hexdigest()

    async def _bounded(
        self, files: Iterable[WalkEntry], operation: Callable[[WalkEntry], Awaitable[None]]
    ) -> None:
        """``operation`` on each file, ``max_concurrent_files`` at a time."""
        pending = iter(files)

        async def worker() -> None:
            for entry in pending:
                await operation(entry)

        try:
            async with asyncio.TaskGroup() as group:
                for _ in range(self._context.settings.max_concurrent_files):
                    group.create_task(worker())
        except ExceptionGroup as failed:
            raise failed.exceptions[0] from None  # the first problem; the others stopped
