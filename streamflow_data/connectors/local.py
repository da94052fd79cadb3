"""The local connector: the file system of the node streamflow-data runs on.

Every blocking call runs in the connector's own thread pool, one thread hop per operation
(small files are read or written whole in one hop). Files are written to a hidden
temporary name in the destination directory and renamed into place on commit, so a reader
never sees a partial file.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import ClassVar, ParamSpec, Self, TypeVar

import pydantic

from streamflow_data.connectors import localfiles as files
from streamflow_data.connectors.base import (
    Capabilities,
    Connector,
    CopyItem,
    FileStat,
    LinkItem,
    Reader,
    WalkEntry,
    WriteItem,
    Writer,
)
from streamflow_data.errors import (
    ChecksumMismatchError,
    ConnectorError,
    InvalidPathError,
    SourceChangedError,
    error_type,
)
from streamflow_data.model import (
    Digest,
    ExecutionLocation,
    Verification,
    check_partial_file,
    is_temporary_of,
)
from streamflow_data.threads import settled
from streamflow_data.validation import Settings, parse_options

__all__ = ["LocalConnector", "LocalOptions"]

P = ParamSpec("P")
T = TypeVar("T")


class LocalOptions(Settings):
    """Options of the local connector."""

    kind: ClassVar[str] = "local connector options"

    max_threads: int = pydantic.Field(default=4, ge=1, le=256)
    """How many threads do blocking file I/O (the connector's concurrency limit)."""
    fsync: bool = pydantic.Field(default=False)
    """Flush each file to disk before it is renamed into place (slower, crash-safe)."""


def _translate(error: OSError, location: ExecutionLocation, path: str) -> ConnectorError:
    """Our error for ``error``, naming the path it names (a copy's source, say) unless
    that is only ``path``'s temporary, else ``path``."""
    named = error.filename
    if isinstance(named, str) and named != path and not is_temporary_of(named, path):
        path = named
    kind = error_type(error.errno or 0)
    translated = kind(location, path, error.strerror)
    translated.__cause__ = error
    return translated


def _outcome(
    location: ExecutionLocation, path: str, outcome: str | OSError | None
) -> ConnectorError | None:
    """Our error for what a file operation returned: an OSError, a mismatch, or None."""
    if isinstance(outcome, OSError):
        return _translate(outcome, location, path)
    if outcome is not None:
        return ChecksumMismatchError(location, path, outcome)
    return None


def _content(
    location: ExecutionLocation, path: str, read: tuple[bytes, str | None] | OSError
) -> bytes | ConnectorError:
    """A batch's file: its bytes, or our error for why they could not be read whole."""
    if isinstance(read, OSError):
        return _translate(read, location, path)
    data, why = read
    return data if why is None else SourceChangedError(location, path, why)


_OVERLAP_SECONDS_PER_FILE = 250e-6
"""A batch of small files read or written alone that took longer than this per file
shows a storage where batches side by side pay (see :class:`_BatchPacing`): a file in
memory takes tens of microseconds (the first batch of a process up to about 130, its
threads and caches warming up), a file on a journaling disk in a slow state, not yet
cached, or on a network file system hundreds."""
_PROBE_FILES = 16
"""The fewest files of a batch whose time says which kind of storage this is."""
_OVERLAP_HOLD = 30.0
"""Seconds that a slow batch lets batches overlap; the next batch after that is written
alone and measured again."""


class _BatchPacing:
    """Whether batches of small files are read (or written) one at a time or side by side.

    One at a time until a batch shows otherwise: where a file is cheap to read or create
    (the page cache, a fast disk), threads handling batches side by side only hand the GIL
    to each other, and to the event loop, between their small system calls. Where it is
    slow (files not yet cached, a journaling disk in a slow state, a network file system),
    they overlap what the kernel or the network takes; a batch that took more than
    :data:`_OVERLAP_SECONDS_PER_FILE` a file, alone, lets the connector's batches overlap
    for :data:`_OVERLAP_HOLD` seconds, and the next batch measures again: a disk slow for
    a while, or a batch slowed by a busy machine rather than by its storage, does not
    decide for the connector's whole life. The first :data:`_PROBE_FILES` files are a
    batch of their own, so that slow storage is found at the cost of a few files handled
    alone, not of a whole batch."""

    def __init__(self) -> None:
        self.overlap_until = float("-inf")
        """Until when (``time.monotonic``) batches overlap."""
        self.probed = False
        self.alone = asyncio.Lock()

    @property
    def overlap(self) -> bool:
        """Whether batches go side by side now."""
        return time.monotonic() < self.overlap_until

    def split(self, calls: Sequence[T]) -> list[Sequence[T]]:
        """``calls`` as the batches to handle in turn: the probe first, when it is due."""
        if self.probed or len(calls) <= _PROBE_FILES:
            return [calls]
        self.probed = True
        return [calls[:_PROBE_FILES], calls[_PROBE_FILES:]]

    async def alone_turn(self) -> bool:
        """Wait for the turn to write a batch alone: False, without a turn, when batches
        overlap (or came to while this one waited)."""
        if self.overlap:
            return False
        await self.alone.acquire()
        if self.overlap:
            self.alone.release()
            return False
        return True

    def end_turn(self, files: int, seconds: float) -> None:
        """The batch written alone had ``files`` files and took ``seconds``."""
        self.alone.release()
        if files >= _PROBE_FILES and seconds > files * _OVERLAP_SECONDS_PER_FILE:
            self.overlap_until = time.monotonic() + _OVERLAP_HOLD


def _timed(
    function: Callable[..., T], calls: Sequence[tuple[object, ...]]
) -> tuple[list[T | OSError], float]:
    """:func:`files.each`, and the seconds it took (blocking: a thread's)."""
    started = time.perf_counter()
    return files.each(function, calls), time.perf_counter() - started


def _close_opened(opened: tuple[int, files.FileIdentity]) -> None:
    """Close the file :func:`localfiles.open_for_reading` opened for a cancelled caller."""
    os.close(opened[0])


def _discard_created(created: tuple[int, str]) -> None:
    """Close and remove the file :func:`localfiles.create` made for a cancelled caller."""
    files.discard(*created)


class LocalConnector(Connector):
    """The local file system, as one location named ``localhost`` of its deployment."""

    capabilities = Capabilities(
        ranged_writes=True,
        server_side_copy=True,
        atomic_directories=True,
        verification=Verification.STORED,  # each write is read back
    )

    def __init__(self, options: LocalOptions | None = None) -> None:
        self.options = options or LocalOptions()
        """The validated options this connector runs with."""
        self._executor = ThreadPoolExecutor(
            max_workers=self.options.max_threads, thread_name_prefix="sfd-local"
        )
        self._read_pacing = _BatchPacing()
        self._write_pacing = _BatchPacing()  # cached files read fast where creating is slow

    @classmethod
    def from_options(cls, options: Mapping[str, object]) -> Self:
        """Build from a mapping of :class:`LocalOptions` fields."""
        return cls(parse_options(LocalOptions, options, "local connector"))

    def locations(self, deployment: str) -> Sequence[ExecutionLocation]:
        """The single location ``localhost`` of ``deployment``."""
        return (ExecutionLocation(deployment=deployment, name="localhost", local=True),)

    async def _run(
        self,
        location: ExecutionLocation,
        path: str,
        function: Callable[P, T],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        """Run a blocking call in the pool, translating OSError into our errors; a path
        argument holding a NUL byte is an :class:`InvalidPathError`, before any I/O. A
        cancelled call is waited for (:func:`~streamflow_data.threads.settled`): it may
        write into a block or a descriptor that its caller gives back."""
        return await self._opening(location, path, None, function, *args, **kwargs)

    async def _opening(
        self,
        location: ExecutionLocation,
        path: str,
        release: Callable[[T], object] | None,
        function: Callable[P, T],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        """:meth:`_run` for a call that opens a file: what it opened for a caller
        cancelled meanwhile is given to ``release`` (closed, and removed when created)."""
        for argument in args:
            if isinstance(argument, str) and "\0" in argument:
                raise InvalidPathError(f"path holds a NUL byte: {argument!r}")
        call = functools.partial(function, *args, **kwargs)
        try:
            return await settled(call, self._executor, release=release)
        except OSError as exc:
            raise _translate(exc, location, path) from exc

    async def stat(
        self, location: ExecutionLocation, path: str, *, follow_symlinks: bool = False
    ) -> FileStat:
        """Metadata of ``path`` (``lstat`` unless ``follow_symlinks``)."""
        return await self._run(location, path, files.stat, path, follow_symlinks)

    async def walk(self, location: ExecutionLocation, path: str) -> AsyncIterator[WalkEntry]:
        """Every path below ``path``, listed in batches off the event loop."""
        batches = files.walk_batches(path)
        try:
            while batch := await self._run(location, path, next, batches, None):
                for entry in batch:
                    yield entry
        finally:
            # A walk cancelled again while its listing is waited for may still be listing
            # in its thread: closing it then fails.
            with contextlib.suppress(ValueError):
                await self._run(location, path, batches.close)

    async def open_reader(self, location: ExecutionLocation, path: str) -> Reader:
        """Open ``path`` for ranged reads with ``pread``."""
        fd, identity = await self._opening(
            location, path, _close_opened, files.open_for_reading, path
        )
        return _LocalReader(self, location, path, fd, identity)

    async def open_writer(
        self,
        location: ExecutionLocation,
        path: str,
        *,
        mode: int | None = None,
        mtime_ns: int | None = None,
        atomic: bool = True,
    ) -> Writer:
        """Create a hidden temporary file beside ``path`` (renamed into place on commit),
        or ``path`` itself when not ``atomic``."""
        fd, target = await self._opening(
            location, path, _discard_created, files.create, path, atomic, mode
        )
        return _LocalWriter(self, location, path, target, fd, mode, mtime_ns)

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
        """Reopen the partial file ``token`` (a temporary of ``path``, or ``path`` itself
        inside a staging tree) without truncating it."""
        check_partial_file(token, path, atomic)
        fd = await self._opening(location, path, os.close, files.reopen, token)
        return _LocalWriter(self, location, path, token, fd, mode, mtime_ns)

    async def read_file(self, location: ExecutionLocation, path: str) -> bytes:
        """The whole file in one thread hop; a file changed while it was read is a
        :class:`SourceChangedError`."""
        content = _content(location, path, await self._run(location, path, files.read_whole, path))
        if isinstance(content, ConnectorError):
            raise content
        return content

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
        """Write, verify (read back), set mode and time, and publish, in one thread hop."""
        fsync = self.options.fsync
        outcome = await self._run(
            location, path, files.write_whole, path, data, mode, mtime_ns, fsync, expected, atomic
        )
        if (error := _outcome(location, path, outcome)) is not None:
            raise error

    async def mkdir(self, location: ExecutionLocation, path: str) -> None:
        """``mkdir -p`` with the process umask."""
        await self._run(location, path, os.makedirs, path, exist_ok=True)

    async def remove(self, location: ExecutionLocation, path: str) -> None:
        """Remove a file, link or directory tree; missing is fine."""
        await self._run(location, path, files.remove, path)

    async def symlink(
        self, location: ExecutionLocation, target: str, path: str, *, mtime_ns: int | None = None
    ) -> None:
        """Create the link under a temporary name, give it its time, and rename it over
        ``path``."""
        await self._run(location, path, files.symlink, target, path, mtime_ns)

    async def make_symlinks(self, location: ExecutionLocation, items: Sequence[LinkItem]) -> None:
        """Every link in one thread hop, each with its own time; the first failure is
        raised."""
        calls = [(item.target, item.path, item.mtime_ns) for item in items]
        for item, outcome in zip(
            items,
            await self._run(location, "(batch)", files.each, files.symlink, calls),
            strict=True,
        ):
            if outcome is not None:
                raise _translate(outcome, location, item.path)

    async def set_metadata(
        self,
        location: ExecutionLocation,
        path: str,
        *,
        mode: int | None = None,
        mtime_ns: int | None = None,
    ) -> None:
        """``chmod`` and ``utime`` of ``path``."""
        await self._run(location, path, files.set_metadata, path, mode, mtime_ns)

    async def rename(self, location: ExecutionLocation, src: str, dst: str) -> None:
        """``rename(2)``: atomic within the file system."""
        await self._run(location, dst, os.rename, src, dst)

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
        """Copy in the kernel (``copy_file_range``) to a temporary name, then rename."""
        fsync = self.options.fsync
        outcome = await self._run(
            location, dst, files.copy_file, src, dst, mode, mtime_ns, fsync, size, atomic
        )
        if (error := _outcome(location, dst, outcome)) is not None:
            raise error

    async def copy_files(
        self, location: ExecutionLocation, items: Sequence[CopyItem]
    ) -> list[ConnectorError | None]:
        """Many server-side copies in one thread hop."""
        fsync = self.options.fsync
        calls = [(i.src, i.dst, i.mode, i.mtime_ns, fsync, i.size, i.atomic) for i in items]
        outcomes = await self._run(location, "(batch)", files.each, files.copy_file, calls)
        return [_outcome(location, i.dst, o) for i, o in zip(items, outcomes, strict=True)]

    async def read_files(
        self, location: ExecutionLocation, paths: Sequence[str]
    ) -> list[bytes | ConnectorError]:
        """Many small files read in one thread hop; batches one at a time where that is
        faster (see :class:`_BatchPacing`)."""
        contents = await self._paced(
            location, self._read_pacing, files.read_whole, [(p,) for p in paths]
        )
        return [_content(location, path, c) for path, c in zip(paths, contents, strict=True)]

    async def write_files(
        self, location: ExecutionLocation, items: Sequence[WriteItem]
    ) -> list[ConnectorError | None]:
        """Many small files written, verified and published in one thread hop; batches
        one at a time where that is faster (see :class:`_BatchPacing`)."""
        fsync = self.options.fsync
        calls = [(i.path, i.data, i.mode, i.mtime_ns, fsync, i.expected, i.atomic) for i in items]
        outcomes = await self._paced(location, self._write_pacing, files.write_whole, calls)
        return [_outcome(location, i.path, o) for i, o in zip(items, outcomes, strict=True)]

    async def _paced(
        self,
        location: ExecutionLocation,
        pacing: _BatchPacing,
        function: Callable[..., T],
        calls: Sequence[tuple[object, ...]],
    ) -> list[T | OSError]:
        """``function`` called with each of ``calls`` in a thread hop per batch, each
        batch alone or beside others as ``pacing`` says."""
        results: list[T | OSError] = []
        for batch in pacing.split(calls):
            alone = await pacing.alone_turn()
            seconds = 0.0
            try:
                outcomes, seconds = await self._run(location, "(batch)", _timed, function, batch)
            finally:
                if alone:
                    pacing.end_turn(len(batch), seconds)
            results += outcomes
        return results

    async def close(self) -> None:
        """Stop the thread pool after the calls in flight."""
        await asyncio.get_running_loop().run_in_executor(None, self._executor.shutdown)


class _LocalReader(Reader):
    def __init__(
        self,
        connector: LocalConnector,
        location: ExecutionLocation,
        path: str,
        fd: int,
        identity: files.FileIdentity,
    ) -> None:
        self._connector = connector
        self._location = location
        self._path = path
        self._fd = fd
        self._identity = identity

    @property
    def local_file(self) -> str:
        """The file read (by path: a route reading it itself opens it again)."""
        return self._path

    @property
    def opened_size(self) -> int:
        """From the ``fstat`` made when the file was opened."""
        return self._identity[2]

    async def changed(self) -> str | None:
        """By the file's size and times (``fstat``), and by whether its path still names
        it (a file replaced by a rename was read whole, but is not what the path holds)."""
        return await self._connector._run(
            self._location, self._path, files.change_since, self._fd, self._path, self._identity
        )

    async def read(self, offset: int, size: int) -> bytes:
        return await self._connector._run(
            self._location, self._path, os.pread, self._fd, size, offset
        )

    async def readinto(self, offset: int, buffer: memoryview) -> int:
        return await self._connector._run(
            self._location, self._path, os.preadv, self._fd, [buffer], offset
        )

    async def close(self) -> None:
        await self._connector._run(self._location, self._path, os.close, self._fd)


class _LocalWriter(Writer):
    verification = Verification.STORED  # each write is read back from the file

    def __init__(
        self,
        connector: LocalConnector,
        location: ExecutionLocation,
        path: str,
        target: str,
        fd: int,
        mode: int | None,
        mtime_ns: int | None,
    ) -> None:
        super().__init__(location, path)
        self._connector = connector
        self._target = target
        self._fd = fd
        self._mode = mode
        self._mtime_ns = mtime_ns
        self._held: dict[int, tuple[int, int]] = {}
        """Offset to the length and CRC32C of the bytes read back after writing there."""

    async def write(self, offset: int, data: bytes | memoryview) -> None:
        """Written, then read back in the same thread hop: the digest at the commit needs
        no second pass over the file (0.18 s per GiB, after the last byte)."""
        self._held[offset] = await self._connector._run(
            self.location, self.path, files.write_read_back, self._fd, data, offset
        )

    @property
    def local_file(self) -> str:
        """The file being written (bytes put there by others count at the commit only
        through a :meth:`digest` that reads it again)."""
        return self._target

    async def digest(self) -> Digest:
        held = dict(self._held)
        return await self._connector._run(
            self.location, self.path, files.held_digest, self._fd, held
        )

    async def _commit(self) -> None:
        fd, self._fd = self._fd, -1
        await self._connector._run(
            self.location,
            self.path,
            files.finish,
            fd,
            self._target,
            self.path,
            self._mode,
            self._mtime_ns,
            self._connector.options.fsync,
        )

    async def _abort(self) -> None:
        fd = self._fd if self._fd >= 0 else None
        self._fd = -1
        await self._connector._run(self.location, self.path, files.discard, fd, self._target)

    @property
    def resume_token(self) -> str:
        return self._target

    async def held_digests(self, start: int, piece: int) -> list[bytes]:
        """Read from the partial file in the connector's threads."""
        return await self._connector._run(
            self.location, self.path, files.piece_digests, self._fd, start, piece
        )

    async def _suspend(self) -> None:
        fd, self._fd = self._fd, -1
        await self._connector._run(self.location, self.path, os.close, fd)
