"""SHA-256 verification of a transfer's files (``checksum = "sha256"``).

The in-stream CRC32C proves that each destination stored the bytes the engine sent. With
SHA-256, once every file is copied, the engine also reads each one back, from the source
once and from every destination, and compares cryptographic hashes: end to end, whatever
the storage did, before a staged tree is published. It costs one more read of the source
and one of each copy: small files in batches (:meth:`Connector.sha256_files`: over SSH one
``sha256sum`` on the host per batch, only digests coming back), larger ones a block at a
time, ``max_concurrent_files`` at a time, hashed in worker threads. A
copy that differs is removed and its destination fails with
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
from streamflow_data.transfer.batch import SmallFile, batches
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
        wanted = [(entry, join(self._src_path, entry.relpath)) for entry in files]
        self._expected = await self._digests(source.connector, source.location, wanted)

    async def check(self, destination: Destination, files: Iterable[WalkEntry]) -> None:
        """Compare each of ``files`` stored at ``destination`` with its source; the first
        copy that differs is removed and raised as a mismatch."""
        connector, location = destination.connector, destination.location
        wanted = [(entry, destination.target(entry.relpath)) for entry in files]
        found = await self._digests(connector, location, wanted)
        for entry, path in wanted:
            expected = self._expected[entry.relpath]
            if found[entry.relpath] == expected:
                continue
            self._context.files[(entry.relpath, destination.index)] = FileState.INVALID
            with contextlib.suppress(StreamFlowDataError):
                await connector.remove(location, path)
            detail = f"sha256 {found[entry.relpath]} read back, the source's is {expected}; removed"
            raise ChecksumMismatchError(location, path, detail)

    async def _digests(
        self, connector: Connector, location: ExecutionLocation, wanted: list[tuple[WalkEntry, str]]
    ) -> dict[str, str]:
        """The SHA-256 of each (file, path) in ``wanted``, by relpath. Small files are read
        in batches (:meth:`Connector.read_files`: one remote command for many, where the
        connector has a bulk route), larger ones a block at a time."""
        settings = self._context.settings
        small = [
            SmallFile(entry.relpath, path, entry.stat)
            for entry, path in wanted
            if entry.stat.size <= settings.block_size
        ]
        large = [(entry, path) for entry, path in wanted if entry.stat.size > settings.block_size]
        work: list[list[SmallFile] | tuple[WalkEntry, str]] = [
            *batches(small, settings.max_batch_files, settings.block_size, 1),
            *large,
        ]
        digests: dict[str, str] = {}

        async def digest(item: list[SmallFile] | tuple[WalkEntry, str]) -> None:
            if isinstance(item, tuple):
                entry, path = item
                digests[entry.relpath] = await self._hash(connector, location, path)
            else:
                digests.update(await self._hash_batch(connector, location, item))

        await self._bounded(work, digest)
        return digests

    async def _hash(self, connector: Connector, location: ExecutionLocation, path: str) -> str:
        sha256 = hashlib.sha256()
        context = self._context
        started = time.monotonic()
        size = await read_back(connector, location, path, sha256, context.settings.block_size)
        context.stats.read(location, size, time.monotonic() - started)
        return sha256.hexdigest()

    async def _hash_batch(
        self,
        connector: Connector,
        location: ExecutionLocation,
        files: list[SmallFile],
    ) -> dict[str, str]:
        """The SHA-256 of each of ``files`` (``src`` is where it is read), by relpath
        (:meth:`Connector.sha256_files`: hashed where the files are, when it can)."""
        context = self._context
        started = time.monotonic()
        digests = await connector.sha256_files(location, [file.src for file in files])
        found: dict[str, str] = {}
        for file, digest in zip(files, digests, strict=True):
            if isinstance(digest, Exception):
                raise digest
            found[file.relpath] = digest
        size = sum(file.stat.size for file in files)
        context.stats.read(location, size, time.monotonic() - started)
        return found

    async def _bounded(
        self,
        work: Iterable[list[SmallFile] | tuple[WalkEntry, str]],
        operation: Callable[[list[SmallFile] | tuple[WalkEntry, str]], Awaitable[None]],
    ) -> None:
        """``operation`` on each item of work, ``max_concurrent_files`` at a time."""
        pending = iter(work)

        async def worker() -> None:
            for item in pending:
                await operation(item)

        try:
            async with asyncio.TaskGroup() as group:
                for _ in range(self._context.settings.max_concurrent_files):
                    group.create_task(worker())
        except ExceptionGroup as failed:
            raise failed.exceptions[0] from None  # the first problem; the others stopped
