"""A connector that wraps another to count bytes and inject faults (fakes for unit tests)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

from streamflow_data import (
    Capabilities,
    Connector,
    ExecutionLocation,
    FileStat,
    LinkItem,
    LocalConnector,
    Reader,
    Verification,
    WalkEntry,
    Writer,
)
from streamflow_data.errors import ConnectorError, StorageFullError
from streamflow_data.model import Digest


class WrappingConnector(Connector):
    """Delegates to a LocalConnector; counts source bytes; fails or stalls writes on demand.

    With ``root``, every path is taken below that directory, so that several of these on
    one machine act as separate hosts whose same paths do not collide.
    """

    capabilities = LocalConnector.capabilities

    def __init__(
        self,
        root: str = "",
        *,
        fail_write_number: int | None = None,
        transient_write_numbers: frozenset[int] = frozenset(),
        corrupt_write_numbers: frozenset[int] = frozenset(),
        disappear_after_writes: int | None = None,
        stall_writes: bool = False,
        unverified_commits: bool = False,
    ) -> None:
        self.inner = LocalConnector()
        self.unverified_commits = unverified_commits
        """Commits ignore the expected digest: a storage whose own check is broken."""
        self.root = root.rstrip("/")
        self.transient_write_numbers = transient_write_numbers
        self.corrupt_write_numbers = corrupt_write_numbers
        """Which writes with data (1, 2, ...) get their first byte flipped: an empty file's
        write has none to flip, and where it falls among the writes of a tree depends on
        the order the tree is listed in."""
        self.data_writes = 0
        self.write_offsets: list[tuple[str, int]] = []
        self.reads_in_flight = 0
        self.most_reads_in_flight = 0
        self.disappear_after_writes = disappear_after_writes
        self.bytes_read = 0
        self.opens = 0
        self.writes = 0
        self.fail_write_number = fail_write_number
        self.stall_writes = stall_writes
        self.write_started = asyncio.Event()
        self.release = asyncio.Event()
        """Stalled writes go on once this is set."""
        self.before_commit: Callable[[], Awaitable[None]] | None = None
        """Awaited by each writer just before it publishes its file."""
        self.after_commit: Callable[[], Awaitable[None]] | None = None
        """Awaited by each writer once it has published its file."""

    def locations(self, deployment: str) -> Sequence[ExecutionLocation]:
        return self.inner.locations(deployment)

    async def stat(
        self, location: ExecutionLocation, path: str, *, follow_symlinks: bool = False
    ) -> FileStat:
        return await self.inner.stat(location, self.root + path, follow_symlinks=follow_symlinks)

    async def walk(self, location: ExecutionLocation, path: str) -> AsyncIterator[WalkEntry]:
        async for entry in self.inner.walk(location, self.root + path):
            yield entry

    async def open_reader(self, location: ExecutionLocation, path: str) -> Reader:
        self.opens += 1
        return _CountingReader(self, await self.inner.open_reader(location, self.root + path))

    async def read_file(self, location: ExecutionLocation, path: str) -> bytes:
        self.opens += 1
        data = await self.inner.read_file(location, self.root + path)
        self.bytes_read += len(data)
        return data

    async def open_writer(
        self,
        location: ExecutionLocation,
        path: str,
        *,
        mode: int | None = None,
        mtime_ns: int | None = None,
        atomic: bool = True,
    ) -> Writer:
        inner = await self.inner.open_writer(
            location, self.root + path, mode=mode, mtime_ns=mtime_ns, atomic=atomic
        )
        return self.writer(location, inner)

    def writer(self, location: ExecutionLocation, inner: Writer) -> Writer:
        """This connector's writer around the local connector's ``inner``."""
        return _FaultyWriter(self, location, inner)

    async def mkdir(self, location: ExecutionLocation, path: str) -> None:
        await self.inner.mkdir(location, self.root + path)

    async def remove(self, location: ExecutionLocation, path: str) -> None:
        await self.inner.remove(location, self.root + path)

    async def symlink(
        self, location: ExecutionLocation, target: str, path: str, *, mtime_ns: int | None = None
    ) -> None:
        await self.inner.symlink(location, target, self.root + path, mtime_ns=mtime_ns)

    async def make_symlinks(self, location: ExecutionLocation, items: Sequence[LinkItem]) -> None:
        rooted = [LinkItem(item.target, self.root + item.path, item.mtime_ns) for item in items]
        await self.inner.make_symlinks(location, rooted)

    async def set_metadata(
        self,
        location: ExecutionLocation,
        path: str,
        *,
        mode: int | None = None,
        mtime_ns: int | None = None,
    ) -> None:
        await self.inner.set_metadata(location, self.root + path, mode=mode, mtime_ns=mtime_ns)

    async def rename(self, location: ExecutionLocation, src: str, dst: str) -> None:
        await self.inner.rename(location, self.root + src, self.root + dst)

    async def close(self) -> None:
        await self.inner.close()


class _CountingReader(Reader):
    def __init__(self, owner: WrappingConnector, inner: Reader) -> None:
        self.owner = owner
        self.inner = inner

    async def read(self, offset: int, size: int) -> bytes:
        data = await self.inner.read(offset, size)
        self.owner.bytes_read += len(data)
        return data

    async def readinto(self, offset: int, buffer: memoryview) -> int:
        owner = self.owner
        owner.reads_in_flight += 1
        owner.most_reads_in_flight = max(owner.most_reads_in_flight, owner.reads_in_flight)
        try:
            count = await self.inner.readinto(offset, buffer)
        finally:
            owner.reads_in_flight -= 1
        owner.bytes_read += count
        return count

    async def changed(self) -> str | None:
        return await self.inner.changed()

    async def close(self) -> None:
        await self.inner.close()


class _FaultyWriter(Writer):
    def __init__(
        self, owner: WrappingConnector, location: ExecutionLocation, inner: Writer
    ) -> None:
        super().__init__(location, inner.path)
        self.owner = owner
        self.inner = inner

    async def write(self, offset: int, data: bytes | memoryview) -> None:
        owner = self.owner
        owner.writes += 1
        owner.write_started.set()
        if owner.stall_writes:
            await owner.release.wait()
        if owner.writes == owner.fail_write_number:
            raise StorageFullError(self.location, self.path, "injected fault")
        if owner.disappear_after_writes is not None and owner.writes > owner.disappear_after_writes:
            raise ConnectorError(self.location, self.path, "injected: connection lost")
        if owner.writes in owner.transient_write_numbers:
            raise ConnectorError(self.location, self.path, "injected: transient fault")
        owner.write_offsets.append((self.path, offset))
        owner.data_writes += bool(len(data))
        if len(data) and owner.data_writes in owner.corrupt_write_numbers:
            corrupted = bytearray(data)
            corrupted[0] ^= 0xFF
            data = bytes(corrupted)
        await self.inner.write(offset, data)

    @property
    def local_file(self) -> str | None:
        return self.inner.local_file

    @property
    def verification(self) -> Verification:  # type: ignore[override]  # the inner one's
        return self.inner.verification

    async def digest(self) -> Digest:
        return await self.inner.digest()

    async def commit(self, expected: Digest | None = None) -> None:
        await super().commit(None if self.owner.unverified_commits else expected)

    async def _commit(self) -> None:
        if self.owner.before_commit is not None:
            await self.owner.before_commit()
        await self.inner.commit()
        if self.owner.after_commit is not None:
            await self.owner.after_commit()

    async def _abort(self) -> None:
        await self.inner.abort()


class SequentialWrappingConnector(WrappingConnector):
    """The same, for a storage that can only append: no ranged writes, no server copy."""

    capabilities = Capabilities(ranged_writes=False, server_side_copy=False)


class OneStreamWrappingConnector(WrappingConnector):
    """A storage that says one stream per file fills its link (see ``chunk_streams``)."""

    def chunk_streams(self, location: ExecutionLocation) -> int | None:
        return 1


class ResumableConnector(WrappingConnector):
    """The same, with writers that keep their partial files for a later run, as the local
    connector's do."""

    async def resume_writer(
        self,
        location: ExecutionLocation,
        path: str,
        token: str,
        *,
        mode: int | None = None,
        mtime_ns: int | None = None,
        atomic: bool = True,
    ) -> Writer:
        inner = await self.inner.resume_writer(
            location, self.root + path, token, mode=mode, mtime_ns=mtime_ns, atomic=atomic
        )
        return self.writer(location, inner)

    def writer(self, location: ExecutionLocation, inner: Writer) -> Writer:
        return _ResumableWriter(self, location, inner)


class _ResumableWriter(_FaultyWriter):
    @property
    def resume_token(self) -> str | None:
        return self.inner.resume_token

    async def _suspend(self) -> None:
        await self.inner.suspend()
