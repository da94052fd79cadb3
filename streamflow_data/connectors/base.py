"""The connector contract: what a storage backend must offer the data manager.

A connector serves one deployment: a set of :class:`~streamflow_data.model.ExecutionLocation`
of one kind of storage (the local disk, SSH hosts, S3 buckets). The contract is narrow, as
fsspec's is: a backend implements the primitives marked abstract; the convenience
operations (:meth:`Connector.exists`, :meth:`Connector.read_file`,
:meth:`Connector.write_file`) are derived here and may be overridden when the storage has a
faster route. Optional fast paths are declared in :class:`Capabilities`.

Every method raises the :mod:`streamflow_data.errors` types, never a backend exception, and
never blocks the event loop. An open file's two sides, :class:`Reader` and :class:`Writer`,
are in :mod:`~streamflow_data.connectors.openfiles`.
"""

from __future__ import annotations

import abc
import asyncio
import enum
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from hashlib import sha256
from typing import NamedTuple, Self, TypeVar

from streamflow_data.connectors.localcopy import CopyEvents, LocalFile
from streamflow_data.connectors.openfiles import Reader, Writer
from streamflow_data.errors import (
    ConfigurationError,
    ConnectorError,
    PathNotFoundError,
    SourceChangedError,
    UnsupportedOperationError,
)
from streamflow_data.model import Digest, ExecutionLocation, Verification

__all__ = [
    "Capabilities",
    "Connector",
    "CopyEvents",
    "CopyItem",
    "FileKind",
    "FileStat",
    "LinkItem",
    "LocalFile",
    "MetadataItem",
    "Reader",
    "WalkEntry",
    "WriteItem",
    "Writer",
    "each_item",
]


class FileKind(enum.Enum):
    """What a path holds."""

    FILE = "file"
    DIRECTORY = "directory"
    SYMLINK = "symlink"


@dataclass(frozen=True, slots=True)
class FileStat:
    """Metadata of one path, as a connector reports it."""

    kind: FileKind
    size: int
    """Bytes of a file; 0 for directories; the target's length for links."""
    mode: int
    """Permission bits (``0o7777`` at most)."""
    mtime_ns: int
    """Modification time, nanoseconds since the epoch."""
    target: str | None = None
    """For a symbolic link, the path it points to, exactly as stored."""


class WalkEntry(NamedTuple):
    """One path below the root of a :meth:`Connector.walk`."""

    relpath: str
    """The path relative to the walk's root, POSIX separators."""
    stat: FileStat


@dataclass(frozen=True, slots=True)
class CopyItem:
    """One file of a bulk server-side copy (:meth:`Connector.copy_files`)."""

    src: str
    dst: str
    mode: int | None = None
    mtime_ns: int | None = None
    size: int | None = None
    """The size the copy must have (the source's planned size)."""
    atomic: bool = True
    """Publish under a temporary name; False writes in place (inside a staging tree)."""


@dataclass(frozen=True, slots=True)
class WriteItem:
    """One file of a bulk write (:meth:`Connector.write_files`)."""

    path: str
    data: bytes | memoryview
    mode: int | None = None
    mtime_ns: int | None = None
    expected: Digest | None = None
    """What the stored bytes must be; checked before the file is published."""
    atomic: bool = True
    """Publish under a temporary name; False writes in place (inside a staging tree)."""


@dataclass(frozen=True, slots=True)
class LinkItem:
    """One symbolic link of a bulk :meth:`Connector.make_symlinks`."""

    target: str
    path: str
    mtime_ns: int | None = None
    """The link's own modification time, set without following it, where the storage
    keeps one (None: the time it is made)."""


@dataclass(frozen=True, slots=True)
class MetadataItem:
    """The mode and time of one path, for a bulk :meth:`Connector.apply_metadata`."""

    path: str
    mode: int | None = None
    mtime_ns: int | None = None


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a connector can do beyond the required primitives.

    The transfer engine and the conformance suite read these flags; an operation whose flag
    is False raises :class:`~streamflow_data.errors.UnsupportedOperationError`.
    """

    symlinks: bool = True
    """Symbolic links can be created and are reported by ``stat`` and ``walk``."""
    permissions: bool = True
    """File modes are stored and reported."""
    mtimes: bool = True
    """Modification times can be set and are reported."""
    ranged_writes: bool = False
    """A :class:`Writer` accepts writes at any offset, in any order."""
    server_side_copy: bool = False
    """:meth:`Connector.copy` copies within one location without moving bytes through us."""
    atomic_directories: bool = False
    """:meth:`Connector.rename` moves a directory atomically, so a tree can be written
    under a hidden name, files in place, and published whole at the end."""
    verification: Verification = Verification.SENT
    """What :meth:`Connector.write_file` and :meth:`Connector.write_files` prove when given
    an ``expected`` digest (see :class:`~streamflow_data.model.Verification`)."""


_Item = TypeVar("_Item")
_Result = TypeVar("_Result")


async def each_item(
    items: Sequence[_Item],
    operation: Callable[[_Item], Awaitable[_Result]],
    concurrency: int,
) -> list[_Result | ConnectorError]:
    """Apply ``operation`` to each item, up to ``concurrency`` at once; each item's result,
    or its ConnectorError, in order."""
    results: dict[int, _Result | ConnectorError] = {}
    slots = asyncio.Semaphore(concurrency)

    async def run(index: int, item: _Item) -> None:
        async with slots:
            try:
                results[index] = await operation(item)
            except ConnectorError as exc:
                results[index] = exc

    if concurrency == 1:  # in turn, without a task per item
        for index, item in enumerate(items):
            await run(index, item)
    else:
        async with asyncio.TaskGroup() as group:
            for index, item in enumerate(items):
                group.create_task(run(index, item))
    return [results[index] for index in range(len(items))]


class Connector(abc.ABC):
    """Async access to the storage of one deployment's locations.

    Paths are absolute POSIX paths on the location. A connector owns its connections and
    threads and its concurrency limits; :meth:`close` releases them.
    """

    capabilities: Capabilities = Capabilities()
    """What this connector can do beyond the required primitives: set by its class, and
    refined by an instance where its options change it (what its writes prove)."""
    bulk_concurrency: int = 1
    """Items of a derived bulk operation (:meth:`copy_files`, :meth:`read_files`,
    :meth:`write_files`) in flight at once. Storage that serves many requests in parallel
    (an object store) raises it; the derived operations then need no override."""

    def chunk_streams(self, location: ExecutionLocation) -> int | None:
        """How many chunks of one file are worth moving from or to ``location`` at once;
        None (the default) leaves it to the engine's ``max_concurrent_chunks``. Where one
        stream fills the link, parallel ones only contend for its ends (the SSH connector
        answers from the link's round trip time: on a short one, parallel writers of one
        file also queue on its lock on the host)."""
        return None

    def batch_streams(self, location: ExecutionLocation) -> int | None:
        """How many batches of small files are worth reading from ``location``, or
        writing to it, at once; None (the default) leaves reads to the engine's
        ``max_concurrent_files`` and writes unbounded (the block pool bounds them). Where
        each batch is a remote process, more at once than hide its start-up only contend
        for this process and the host's cores and disk (the shell connectors answer from
        their transport)."""
        return None

    @classmethod
    def from_options(cls, options: Mapping[str, object]) -> Self:
        """Build a connector from configuration options (a TOML table, say).

        The default accepts no options; connectors that take some override this and
        validate them with a pydantic model, raising
        :class:`~streamflow_data.errors.ConfigurationError` on a mistake.
        """
        if options:
            raise ConfigurationError(
                f"connector {cls.__name__} takes no options, got: {', '.join(sorted(options))}"
            )
        return cls()

    @abc.abstractmethod
    def locations(self, deployment: str) -> Sequence[ExecutionLocation]:
        """The locations this connector serves when it is bound to ``deployment``."""

    @abc.abstractmethod
    async def stat(
        self, location: ExecutionLocation, path: str, *, follow_symlinks: bool = False
    ) -> FileStat:
        """Metadata of ``path``; raises :class:`PathNotFoundError` when it does not exist."""

    @abc.abstractmethod
    def walk(self, location: ExecutionLocation, path: str) -> AsyncIterator[WalkEntry]:
        """Every path below the directory ``path``, parents before their children.

        Symbolic links are reported, not followed.
        """

    @abc.abstractmethod
    async def open_reader(self, location: ExecutionLocation, path: str) -> Reader:
        """Open the file at ``path`` for ranged reads."""

    @abc.abstractmethod
    async def open_writer(
        self,
        location: ExecutionLocation,
        path: str,
        *,
        mode: int | None = None,
        mtime_ns: int | None = None,
        atomic: bool = True,
    ) -> Writer:
        """Start writing a file that appears at ``path`` on commit.

        ``mode`` and ``mtime_ns``, when given, are applied on commit; otherwise the file gets
        the storage's default mode and the commit time. The parent directory must exist
        (:class:`PathNotFoundError` otherwise). With ``atomic=False`` the bytes go straight
        to ``path`` (which must not exist), for files inside a staging tree that nobody
        sees until it is renamed; an abort still removes them.
        """

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
        """Continue a file an earlier writer for ``path`` left behind (its
        :attr:`Writer.resume_token`), keeping the bytes it wrote.

        Raises :class:`PathNotFoundError` when the partial file is gone and
        :class:`UnsupportedOperationError` when the connector cannot resume; the engine
        then starts the file from zero. A token that does not belong to ``path`` is refused
        with :class:`InvalidPathError`: tokens come from a database file.

        Without :attr:`Capabilities.ranged_writes`, the first write of the resumed writer
        is at the end of what the journal recorded, which may be a little before the end
        of what the writer kept (a write cut short by the interruption): the writer drops
        the bytes from there on, or raises :class:`ConnectorError` if it cannot.
        """
        raise UnsupportedOperationError(location, path, "resuming a partial file")

    @abc.abstractmethod
    async def mkdir(self, location: ExecutionLocation, path: str) -> None:
        """Create directory ``path`` and missing parents; an existing directory is fine."""

    @abc.abstractmethod
    async def remove(self, location: ExecutionLocation, path: str) -> None:
        """Remove a file, link or whole directory tree; a missing path is not an error."""

    async def symlink(
        self, location: ExecutionLocation, target: str, path: str, *, mtime_ns: int | None = None
    ) -> None:
        """Create (or atomically replace) a symbolic link at ``path`` pointing to ``target``;
        with ``mtime_ns``, the link's own time, where the storage keeps one."""
        raise UnsupportedOperationError(location, path, "symbolic links")

    async def set_metadata(
        self,
        location: ExecutionLocation,
        path: str,
        *,
        mode: int | None = None,
        mtime_ns: int | None = None,
    ) -> None:
        """Set the mode and modification time of an existing directory or file."""
        raise UnsupportedOperationError(location, path, "setting mode and time")

    async def rename(self, location: ExecutionLocation, src: str, dst: str) -> None:
        """Move ``src`` to ``dst`` atomically; an existing non-empty directory at ``dst``
        raises :class:`PathExistsError`."""
        raise UnsupportedOperationError(location, src, "atomic rename")

    async def copy(
        self,
        location: ExecutionLocation,
        src: str,
        dst: str,
        *,
        mode: int | None = None,
        mtime_ns: int | None = None,
        size: int | None = None,
        atomic: bool = True,
    ) -> None:
        """Copy file ``src`` to ``dst`` on the same location, server side, atomically.

        With ``size``, a copy of another size (the source changed) is discarded and
        :class:`ChecksumMismatchError` raised: the storage copies the bytes itself, so the
        size is what is verified.
        """
        raise UnsupportedOperationError(location, src, "server-side copy")

    async def warm_up(self, location: ExecutionLocation) -> None:  # noqa: B027 - optional
        """Open what the first operation on ``location`` would wait for (a connection, a
        login shell), so that a caller who knows the location is about to be used can
        have it ready beforehand. Raises what that operation would meet; by default
        nothing to open."""

    async def close(self) -> None:  # noqa: B027 - optional hook: most connectors hold resources
        """Release connections and threads. The connector is unusable afterwards."""

    # -- a file of this machine by the connector's own route ----------------------------------

    def put_file(
        self, writer: Writer, source: LocalFile, events: CopyEvents
    ) -> Awaitable[None] | None:
        """The connector's own route for the local file ``source`` into ``writer`` (one
        of this connector's, the file's only destination), or None, the default: the
        engine then reads the file in blocks and writes them.

        The route writes every byte with ``writer``'s offsets (the engine commits it
        afterwards, as on the block path), tells ``events`` what it moved, and raises
        :class:`~streamflow_data.errors.ConnectorError` (a source that ends early:
        :class:`~streamflow_data.errors.SourceChangedError`).
        """
        return None

    def get_file(
        self, reader: Reader, destination: LocalFile, events: CopyEvents
    ) -> Awaitable[None] | None:
        """The connector's own route from ``reader`` (one of this connector's) into the
        existing local file ``destination`` at the same offsets, or None, the default: the
        engine then reads blocks and writes them to the local file's writer.

        As :meth:`put_file`; no byte of the route passes through the engine, so the copy
        is checked by its size and the route's own checks, not by a CRC32C of the engine.
        """
        return None

    # -- derived operations -----------------------------------------------------------------
    #
    # The bulk operations move many small files in one go. Each returns one result per
    # item, in order: None (or the bytes read) on success, the ConnectorError otherwise,
    # so that one bad file does not fail its neighbours. Derivation runs one way: each is
    # derived here from its single operation, the primitive. Connectors override them
    # with one round trip for the whole batch where they can (a thread hop, a tar stream);
    # a single operation never goes through its bulk one.

    async def copy_files(
        self, location: ExecutionLocation, items: Sequence[CopyItem]
    ) -> list[ConnectorError | None]:
        """Server-side copies of many files (see :meth:`copy`)."""
        return await each_item(
            items,
            lambda i: self.copy(
                location,
                i.src,
                i.dst,
                mode=i.mode,
                mtime_ns=i.mtime_ns,
                size=i.size,
                atomic=i.atomic,
            ),
            self.bulk_concurrency,
        )

    async def read_files(
        self, location: ExecutionLocation, paths: Sequence[str]
    ) -> list[bytes | ConnectorError]:
        """The content of many small files (see :meth:`read_file`)."""
        return await each_item(
            paths, lambda path: self.read_file(location, path), self.bulk_concurrency
        )

    async def sha256_files(
        self, location: ExecutionLocation, paths: Sequence[str]
    ) -> list[str | ConnectorError]:
        """The SHA-256 (hex) of each of many small files, or its error: read with
        :meth:`read_files` and hashed here. A connector that can hash where the files are
        overrides it, so that only the digests cross the network."""
        contents = await self.read_files(location, paths)
        return await asyncio.to_thread(
            lambda: [
                c if isinstance(c, ConnectorError) else sha256(c).hexdigest() for c in contents
            ]
        )

    async def write_files(
        self, location: ExecutionLocation, items: Sequence[WriteItem]
    ) -> list[ConnectorError | None]:
        """Write many small files, each atomically and verified (see :meth:`write_file`)."""
        return await each_item(
            items,
            lambda i: self.write_file(
                location,
                i.path,
                i.data,
                mode=i.mode,
                mtime_ns=i.mtime_ns,
                expected=i.expected,
                atomic=i.atomic,
            ),
            self.bulk_concurrency,
        )

    async def make_directories(self, location: ExecutionLocation, paths: Sequence[str]) -> None:
        """Create many directories (see :meth:`mkdir`); the first failure is raised."""
        for path in paths:
            await self.mkdir(location, path)

    async def make_symlinks(self, location: ExecutionLocation, items: Sequence[LinkItem]) -> None:
        """Create many links (see :meth:`symlink`); the first failure is raised."""
        for item in items:
            await self.symlink(location, item.target, item.path, mtime_ns=item.mtime_ns)

    async def apply_metadata(
        self, location: ExecutionLocation, items: Sequence[MetadataItem]
    ) -> None:
        """Set the mode and time of many paths, in order (see :meth:`set_metadata`); the
        first failure is raised."""
        for item in items:
            await self.set_metadata(location, item.path, mode=item.mode, mtime_ns=item.mtime_ns)

    async def finish_tree(
        self,
        location: ExecutionLocation,
        items: Sequence[MetadataItem],
        staged: str | None,
        path: str,
    ) -> None:
        """The last step of a tree copied to ``path``: give its directories their mode and
        time (``items``, deepest first, as :meth:`apply_metadata`), then rename the staging
        tree ``staged`` to ``path`` (None: the tree was written in place). Derived from
        those two; a remote connector does both in one round trip."""
        if items:
            await self.apply_metadata(location, items)
        if staged is not None:
            await self.rename(location, staged, path)

    async def exists(self, location: ExecutionLocation, path: str) -> bool:
        """Whether ``path`` exists (a dangling link exists)."""
        try:
            await self.stat(location, path)
        except PathNotFoundError:
            return False
        return True

    async def read_file(self, location: ExecutionLocation, path: str) -> bytes:
        """The whole content of a (small) file; a file changed while it was read (see
        :meth:`Reader.changed`) is a :class:`SourceChangedError`."""
        async with await self.open_reader(location, path) as reader:
            size = (await self.stat(location, path, follow_symlinks=True)).size
            data = await reader.read(0, size)
            why = await reader.changed()
        if why is not None:
            raise SourceChangedError(location, path, why)
        return data

    async def write_file(
        self,
        location: ExecutionLocation,
        path: str,
        data: bytes | memoryview,
        *,
        mode: int | None = None,
        mtime_ns: int | None = None,
        expected: Digest | None = None,
        atomic: bool = True,
    ) -> None:
        """Write a whole (small) file, verified against ``expected`` if given."""
        async with await self.open_writer(
            location, path, mode=mode, mtime_ns=mtime_ns, atomic=atomic
        ) as w:
            await w.write(0, data)
            await w.commit(expected)
