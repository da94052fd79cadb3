"""An in-memory connector: the smallest complete example of a connector plugin.

Each location of a ``memory`` deployment is a private file system held in a dictionary.
It is useful in tests of code that embeds streamflow-data, and as a template: it
implements every primitive of :class:`streamflow_data.Connector`, validates its options
with pydantic, and passes the shared conformance suite unchanged.
"""

from __future__ import annotations

import posixpath
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Self

import pydantic

from streamflow_data import (
    Capabilities,
    ChecksumMismatchError,
    ConfigurationError,
    Connector,
    Digest,
    ExecutionLocation,
    FileKind,
    FileStat,
    NotDirectoryError,
    PathExistsError,
    PathNotFoundError,
    Reader,
    Verification,
    WalkEntry,
    Writer,
)
from streamflow_data.sdk import crc32c_async

__all__ = ["MemoryConnector", "MemoryOptions"]


class MemoryOptions(pydantic.BaseModel):
    """Options of the memory connector."""

    model_config = pydantic.ConfigDict(extra="forbid", frozen=True)

    locations: list[str] = pydantic.Field(default_factory=lambda: ["memory-0"], min_length=1)
    """Names of the locations; each is a separate, initially empty file system."""


@dataclass(slots=True)
class _Node:
    kind: FileKind
    mode: int
    mtime_ns: int
    data: bytes = b""
    target: str | None = None
    size: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        self.size = len(self.data) if self.kind is FileKind.FILE else 0

    def stat(self) -> FileStat:
        size = len(self.target or "") if self.kind is FileKind.SYMLINK else self.size
        return FileStat(self.kind, size, self.mode, self.mtime_ns, self.target)


def _directory() -> _Node:
    return _Node(FileKind.DIRECTORY, 0o755, time.time_ns())


def _file(data: bytes, mode: int | None, mtime_ns: int | None) -> _Node:
    """A file as published: the requested mode and time, or the defaults."""
    return _Node(
        FileKind.FILE,
        0o644 if mode is None else mode,
        time.time_ns() if mtime_ns is None else mtime_ns,
        data,
    )


class MemoryConnector(Connector):
    """Files in a dictionary per location; nothing survives the process."""

    capabilities = Capabilities(
        ranged_writes=True,
        server_side_copy=True,
        atomic_directories=True,
        verification=Verification.STORED,  # the buffer is the storage
    )

    def __init__(self, options: MemoryOptions | None = None) -> None:
        self.options = options or MemoryOptions()
        self._trees: dict[str, dict[str, _Node]] = {
            name: {"/": _directory()} for name in self.options.locations
        }

    @classmethod
    def from_options(cls, options: Mapping[str, object]) -> Self:
        """Validate :class:`MemoryOptions` and build the connector."""
        try:
            return cls(MemoryOptions.model_validate(dict(options)))
        except pydantic.ValidationError as exc:
            raise ConfigurationError(f"invalid options for the memory connector: {exc}") from exc

    def locations(self, deployment: str) -> Sequence[ExecutionLocation]:
        """One location per configured name."""
        return [ExecutionLocation(deployment, name) for name in self.options.locations]

    # -- lookups --------------------------------------------------------------------------------

    def _tree(self, location: ExecutionLocation) -> dict[str, _Node]:
        return self._trees[location.name]

    def _node(self, location: ExecutionLocation, path: str, follow: bool = False) -> _Node:
        return self._resolve(location, path, follow)[1]

    def _resolve(self, location: ExecutionLocation, path: str, follow: bool) -> tuple[str, _Node]:
        """The node at ``path`` and its own path (where links lead, if ``follow``)."""
        tree = self._tree(location)
        path = posixpath.normpath(path)
        for _ in range(40):  # bounded, like the kernel's symlink loop limit
            node = tree.get(path)
            if node is None:
                raise PathNotFoundError(location, path)
            if not (follow and node.kind is FileKind.SYMLINK and node.target is not None):
                return path, node
            path = posixpath.normpath(posixpath.join(posixpath.dirname(path), node.target))
        raise PathNotFoundError(location, path, "too many levels of symbolic links")

    def _parent_directory(self, location: ExecutionLocation, path: str) -> None:
        parent = self._node(location, posixpath.dirname(path), follow=True)
        if parent.kind is not FileKind.DIRECTORY:
            raise NotDirectoryError(location, posixpath.dirname(path))

    def _place(self, location: ExecutionLocation, path: str, node: _Node) -> None:
        self._parent_directory(location, path)
        existing = self._tree(location).get(path)
        if existing is not None and existing.kind is FileKind.DIRECTORY:
            raise PathExistsError(location, path, "is a directory")
        self._tree(location)[path] = node

    # -- the primitives ---------------------------------------------------------------------------

    async def stat(
        self, location: ExecutionLocation, path: str, *, follow_symlinks: bool = False
    ) -> FileStat:
        """Metadata of ``path``."""
        return self._node(location, path, follow_symlinks).stat()

    async def walk(self, location: ExecutionLocation, path: str) -> AsyncIterator[WalkEntry]:
        """Entries below ``path`` (or where it leads) in path order: parents first."""
        root, node = self._resolve(location, path, follow=True)
        if node.kind is not FileKind.DIRECTORY:
            raise NotDirectoryError(location, path)
        prefix = root.rstrip("/") + "/"
        tree = self._tree(location)
        for name in sorted(key for key in tree if key.startswith(prefix)):
            yield WalkEntry(name[len(prefix) :], tree[name].stat())

    async def open_reader(self, location: ExecutionLocation, path: str) -> Reader:
        """A reader over the file's current bytes."""
        node = self._node(location, path, follow=True)
        if node.kind is not FileKind.FILE:
            raise PathExistsError(location, path, "is not a file")
        return _MemoryReader(node.data)

    async def open_writer(
        self,
        location: ExecutionLocation,
        path: str,
        *,
        mode: int | None = None,
        mtime_ns: int | None = None,
        atomic: bool = True,
    ) -> Writer:
        """A buffer published at ``path`` on commit (every write here is atomic)."""
        path = posixpath.normpath(path)
        self._parent_directory(location, path)
        return _MemoryWriter(self, location, path, mode, mtime_ns)

    async def mkdir(self, location: ExecutionLocation, path: str) -> None:
        """Create ``path`` and its missing parents."""
        path = posixpath.normpath(path)
        tree = self._tree(location)
        missing: list[str] = []
        while path not in tree:
            missing.append(path)
            path = posixpath.dirname(path)
        if self._node(location, path, follow=True).kind is not FileKind.DIRECTORY:
            raise PathExistsError(location, path, "is not a directory")
        for directory in reversed(missing):
            tree[directory] = _directory()

    async def remove(self, location: ExecutionLocation, path: str) -> None:
        """Remove ``path`` and everything below it."""
        path = posixpath.normpath(path)
        tree = self._tree(location)
        if tree.pop(path, None) is not None:
            prefix = path.rstrip("/") + "/"
            for name in [key for key in tree if key.startswith(prefix)]:
                del tree[name]

    async def symlink(
        self, location: ExecutionLocation, target: str, path: str, *, mtime_ns: int | None = None
    ) -> None:
        """Create or replace a link, with its own time when given."""
        mtime_ns = time.time_ns() if mtime_ns is None else mtime_ns
        node = _Node(FileKind.SYMLINK, 0o777, mtime_ns, target=target)
        self._place(location, posixpath.normpath(path), node)

    async def rename(self, location: ExecutionLocation, src: str, dst: str) -> None:
        """Move ``src`` and everything below it to ``dst``."""
        src, dst = posixpath.normpath(src), posixpath.normpath(dst)
        tree = self._tree(location)
        node = self._node(location, src)
        self._parent_directory(location, dst)
        existing = tree.get(dst)
        occupied = any(key.startswith(dst.rstrip("/") + "/") for key in tree)
        if existing is not None and existing.kind is FileKind.DIRECTORY and occupied:
            raise PathExistsError(location, dst, "directory not empty")
        prefix = src.rstrip("/") + "/"
        moved = {key: tree.pop(key) for key in [k for k in tree if k.startswith(prefix)]}
        del tree[src]
        tree[dst] = node
        for key, child in moved.items():
            tree[dst.rstrip("/") + "/" + key[len(prefix) :]] = child

    async def set_metadata(
        self,
        location: ExecutionLocation,
        path: str,
        *,
        mode: int | None = None,
        mtime_ns: int | None = None,
    ) -> None:
        """Set mode and time."""
        node = self._node(location, path, follow=True)
        node.mode = node.mode if mode is None else mode
        node.mtime_ns = node.mtime_ns if mtime_ns is None else mtime_ns

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
        """Share the bytes of ``src`` under a new name (bytes are immutable)."""
        source = self._node(location, src, follow=True)
        if size is not None and source.size != size:
            raise ChecksumMismatchError(location, dst, f"{source.size} bytes, not {size}")
        self._place(location, posixpath.normpath(dst), _file(source.data, mode, mtime_ns))


class _MemoryReader(Reader):
    def __init__(self, data: bytes) -> None:
        self._data = data

    async def read(self, offset: int, size: int) -> bytes:
        return self._data[offset : offset + size]

    async def close(self) -> None:
        self._data = b""


class _MemoryWriter(Writer):
    verification = Verification.STORED  # the buffer checksummed is the one stored

    def __init__(
        self,
        connector: MemoryConnector,
        location: ExecutionLocation,
        path: str,
        mode: int | None,
        mtime_ns: int | None,
    ) -> None:
        super().__init__(location, path)
        self._connector = connector
        self._buffer = bytearray()
        self._mode = mode
        self._mtime_ns = mtime_ns

    async def write(self, offset: int, data: bytes | memoryview) -> None:
        end = offset + len(data)
        if end > len(self._buffer):
            self._buffer.extend(bytes(end - len(self._buffer)))
        self._buffer[offset:end] = data

    async def digest(self) -> Digest:
        """The buffer's size and CRC32C (off the event loop unless small: the first
        checksum imports its native module)."""
        return Digest(len(self._buffer), await crc32c_async(self._buffer))

    async def _commit(self) -> None:
        node = _file(bytes(self._buffer), self._mode, self._mtime_ns)
        self._connector._place(self.location, self.path, node)

    async def _abort(self) -> None:
        self._buffer = bytearray()
