"""The local connector: the file system of the node streamflow-data runs on.

Every blocking call runs in the connector's own thread pool, one thread hop per operation
(small files are read or written whole in one hop). Files are written to a hidden
temporary name in the destination directory and renamed into place on commit, so a reader
never sees a partial file.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import os
import stat as stat_module
from collections.abc import AsyncIterator, Callable, Generator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import ClassVar, ParamSpec, Self, TypeVar

from streamflow_data.checksum import crc32c_of_file
from streamflow_data.connectors.base import (
    Capabilities,
    Connector,
    CopyItem,
    FileKind,
    FileStat,
    Reader,
    WalkEntry,
    WriteItem,
    Writer,
)
from streamflow_data.errors import (
    ChecksumMismatchError,
    ConnectorError,
    error_type,
)
from streamflow_data.model import Digest, ExecutionLocation, check_partial_file, temporary_name
from streamflow_data.validation import Settings, parse_options, setting

__all__ = ["LocalConnector", "LocalOptions"]

_WALK_BATCH = 512
P = ParamSpec("P")
T = TypeVar("T")
_COPY_FALLBACK_ERRNOS = {errno.EXDEV, errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP}


@dataclass(frozen=True, kw_only=True)
class LocalOptions(Settings):
    """Options of the local connector."""

    kind: ClassVar[str] = "local connector options"

    max_threads: int = setting(4, ge=1, le=256)
    """How many threads do blocking file I/O (the connector's concurrency limit)."""
    fsync: bool = setting(False)
    """Flush each file to disk before it is renamed into place (slower, crash-safe)."""


def _file_stat(path: str, st: os.stat_result) -> FileStat:
    if stat_module.S_ISLNK(st.st_mode):
        return FileStat(FileKind.SYMLINK, st.st_size, 0o777, st.st_mtime_ns, os.readlink(path))
    kind = FileKind.DIRECTORY if stat_module.S_ISDIR(st.st_mode) else FileKind.FILE
    size = st.st_size if kind is FileKind.FILE else 0
    return FileStat(kind, size, stat_module.S_IMODE(st.st_mode), st.st_mtime_ns)


def _stat(path: str, follow_symlinks: bool) -> FileStat:
    return _file_stat(path, os.stat(path, follow_symlinks=follow_symlinks))


def _walk_batches(root: str) -> Generator[list[WalkEntry], None, None]:
    """Depth-first listing in batches, so one thread hop serves many entries."""
    pending = [""]
    batch: list[WalkEntry] = []
    while pending:
        relative = pending.pop()
        with os.scandir(f"{root}/{relative}" if relative else root) as entries:
            for entry in entries:
                relpath = f"{relative}/{entry.name}" if relative else entry.name
                info = _file_stat(entry.path, entry.stat(follow_symlinks=False))
                batch.append(WalkEntry(relpath, info))
                if info.kind is FileKind.DIRECTORY:
                    pending.append(relpath)
                if len(batch) >= _WALK_BATCH:
                    yield batch
                    batch = []
    if batch:
        yield batch


def _process_umask() -> int | None:
    """The umask, read without changing it (Linux reports it in /proc since 4.7)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    return None


_UMASK = _process_umask()


def _create(path: str, atomic: bool, mode: int | None) -> tuple[int, str]:
    """Create the file to write: a hidden temporary beside ``path``, or ``path`` itself.

    Opened read-write, so that the written bytes can be read back to verify them.
    """
    target = temporary_name(path) if atomic else path
    flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
    return os.open(target, flags, 0o666 if mode is None else mode & 0o777), target


def _reopen(target: str) -> int:
    """Open an existing partial file for more writes; it must be a regular file."""
    fd = os.open(target, os.O_RDWR | os.O_CLOEXEC | os.O_NOFOLLOW)
    if not stat_module.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise FileNotFoundError(errno.ENOENT, "not a regular file", target)
    return fd


def _pwrite_all(fd: int, data: bytes | memoryview, offset: int) -> None:
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, offset)
        view = view[written:]
        offset += written


def _finish(
    fd: int, target: str, path: str, mode: int | None, mtime_ns: int | None, fsync: bool
) -> None:
    """Give the file its mode and time and close it; rename a temporary into place."""
    try:
        # Creation gave the file mode & 0o777 less the umask; fix it only where it differs.
        if mode is not None and (_UMASK is None or mode & 0o777 & ~_UMASK != mode):
            os.fchmod(fd, mode)
        if mtime_ns is not None:
            os.utime(fd, ns=(mtime_ns, mtime_ns))
        if fsync:
            os.fsync(fd)
    finally:
        os.close(fd)
    if target != path:
        os.rename(target, path)


def _discard(fd: int | None, target: str) -> None:
    if fd is not None:
        with contextlib.suppress(OSError):
            os.close(fd)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(target)


def _fd_digest(fd: int) -> Digest:
    """Size and CRC32C of an open file, read back from the storage."""
    return Digest(*crc32c_of_file(fd))


def _write_whole(
    path: str,
    data: bytes | memoryview,
    mode: int | None,
    mtime_ns: int | None,
    fsync: bool,
    expected: Digest | None,
    atomic: bool,
) -> str | None:
    """Write a file, verify it, publish it.

    Returns why the stored bytes do not match ``expected`` (then nothing is published).
    """
    fd, target = _create(path, atomic, mode)
    try:
        _pwrite_all(fd, data, 0)
        if expected is not None and (actual := _fd_digest(fd)) != expected:
            _discard(fd, target)
            return f"expected {expected}, stored {actual}"
    except BaseException:
        _discard(fd, target)
        raise
    try:
        _finish(fd, target, path, mode, mtime_ns, fsync)
    except BaseException:
        _discard(None, target)
        raise
    return None


def _read_whole(path: str) -> bytes:
    """A file's bytes, read without a buffered file object (that doubled the cost of each
    small file of a batch)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        data = os.read(fd, 64 * 1024)
        if not data or not (more := os.read(fd, 1 << 20)):
            return data
        parts = [data, more]
        while chunk := os.read(fd, 1 << 20):
            parts.append(chunk)
        return b"".join(parts)
    finally:
        os.close(fd)


def _copy_contents(src_fd: int, dst_fd: int, size: int | None) -> int:
    """Copy in the kernel when it can (reflink or copy_file_range), else through a buffer.

    ``size`` is the expected size (else the file's current one). Returns the bytes copied.
    """
    if size is None:
        size = os.fstat(src_fd).st_size
    offset = 0
    try:
        # One more byte than expected is asked for, to notice a file that grew.
        while copied := os.copy_file_range(src_fd, dst_fd, size + 1 - offset, offset, offset):
            offset += copied
            if offset > size:
                break
        return offset
    except OSError as exc:
        if exc.errno not in _COPY_FALLBACK_ERRNOS:
            raise
    while chunk := os.pread(src_fd, 1 << 20, offset):
        _pwrite_all(dst_fd, chunk, offset)
        offset += len(chunk)
    return offset


def _copy_file(
    src: str,
    dst: str,
    mode: int | None,
    mtime_ns: int | None,
    fsync: bool,
    size: int | None,
    atomic: bool,
) -> str | None:
    """Copy ``src`` to ``dst``; returns why the copy is wrong (then nothing is published)."""
    src_fd = os.open(src, os.O_RDONLY | os.O_CLOEXEC)
    try:
        dst_fd, target = _create(dst, atomic, mode)
        try:
            copied = _copy_contents(src_fd, dst_fd, size)
            if size is not None and copied != size:
                _discard(dst_fd, target)
                return f"copied {copied} bytes where {size} were expected"
        except BaseException:
            _discard(dst_fd, target)
            raise
        try:
            _finish(dst_fd, target, dst, mode, mtime_ns, fsync)
        except BaseException:
            _discard(None, target)
            raise
    finally:
        os.close(src_fd)
    return None


def _symlink(target: str, path: str) -> None:
    tmp = temporary_name(path)
    os.symlink(target, tmp)
    try:
        os.rename(tmp, path)
    except BaseException:
        _discard(None, tmp)
        raise


def _remove(path: str) -> None:
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return
    if stat_module.S_ISDIR(info.st_mode):
        import shutil  # here: with its archive modules it costs ~10 ms of start-up

        shutil.rmtree(path)
    else:
        os.unlink(path)


def _each(function: Callable[..., T], calls: Sequence[tuple[object, ...]]) -> list[T | OSError]:
    """Call ``function`` with each argument tuple; an OSError becomes that call's result."""
    results: list[T | OSError] = []
    for arguments in calls:
        try:
            results.append(function(*arguments))
        except OSError as exc:
            results.append(exc)
    return results


def _translate(error: OSError, location: ExecutionLocation, path: str) -> ConnectorError:
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


def _set_metadata(path: str, mode: int | None, mtime_ns: int | None) -> None:
    if mode is not None:
        os.chmod(path, mode)
    if mtime_ns is not None:
        os.utime(path, ns=(mtime_ns, mtime_ns))


class LocalConnector(Connector):
    """The local file system, as one location named ``localhost`` of its deployment."""

    capabilities = Capabilities(ranged_writes=True, server_side_copy=True, atomic_directories=True)

    def __init__(self, options: LocalOptions | None = None) -> None:
        self.options = options or LocalOptions()
        """The validated options this connector runs with."""
        self._executor = ThreadPoolExecutor(
            max_workers=self.options.max_threads, thread_name_prefix="sfd-local"
        )

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
        """Run a blocking call in the pool, translating OSError into our errors."""
        loop = asyncio.get_running_loop()
        call = functools.partial(function, *args, **kwargs)
        try:
            return await loop.run_in_executor(self._executor, call)
        except OSError as exc:
            raise _translate(exc, location, path) from exc

    async def stat(
        self, location: ExecutionLocation, path: str, *, follow_symlinks: bool = False
    ) -> FileStat:
        """Metadata of ``path`` (``lstat`` unless ``follow_symlinks``)."""
        return await self._run(location, path, _stat, path, follow_symlinks)

    async def walk(self, location: ExecutionLocation, path: str) -> AsyncIterator[WalkEntry]:
        """Every path below ``path``, listed in batches off the event loop."""
        batches = _walk_batches(path)
        try:
            while batch := await self._run(location, path, next, batches, None):
                for entry in batch:
                    yield entry
        finally:
            # A cancelled walk may still be listing in its thread: closing it then fails.
            with contextlib.suppress(ValueError):
                await self._run(location, path, batches.close)

    async def open_reader(self, location: ExecutionLocation, path: str) -> Reader:
        """Open ``path`` for ranged reads with ``pread``."""
        fd = await self._run(location, path, os.open, path, os.O_RDONLY | os.O_CLOEXEC)
        return _LocalReader(self, location, path, fd)

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
        fd, target = await self._run(location, path, _create, path, atomic, mode)
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
        fd = await self._run(location, path, _reopen, token)
        return _LocalWriter(self, location, path, token, fd, mode, mtime_ns)

    async def read_file(self, location: ExecutionLocation, path: str) -> bytes:
        """The whole file in one thread hop."""
        return await self._run(location, path, _read_whole, path)

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
            location, path, _write_whole, path, data, mode, mtime_ns, fsync, expected, atomic
        )
        if (error := _outcome(location, path, outcome)) is not None:
            raise error

    async def mkdir(self, location: ExecutionLocation, path: str) -> None:
        """``mkdir -p`` with the process umask."""
        await self._run(location, path, os.makedirs, path, exist_ok=True)

    async def remove(self, location: ExecutionLocation, path: str) -> None:
        """Remove a file, link or directory tree; missing is fine."""
        await self._run(location, path, _remove, path)

    async def symlink(self, location: ExecutionLocation, target: str, path: str) -> None:
        """Create the link under a temporary name and rename it over ``path``."""
        await self._run(location, path, _symlink, target, path)

    async def set_metadata(
        self,
        location: ExecutionLocation,
        path: str,
        *,
        mode: int | None = None,
        mtime_ns: int | None = None,
    ) -> None:
        """``chmod`` and ``utime`` of ``path``."""
        await self._run(location, path, _set_metadata, path, mode, mtime_ns)

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
            location, src, _copy_file, src, dst, mode, mtime_ns, fsync, size, atomic
        )
        if (error := _outcome(location, dst, outcome)) is not None:
            raise error

    async def copy_files(
        self, location: ExecutionLocation, items: Sequence[CopyItem]
    ) -> list[ConnectorError | None]:
        """Many server-side copies in one thread hop."""
        fsync = self.options.fsync
        calls = [(i.src, i.dst, i.mode, i.mtime_ns, fsync, i.size, i.atomic) for i in items]
        outcomes = await self._run(location, "(batch)", _each, _copy_file, calls)
        return [_outcome(location, i.dst, o) for i, o in zip(items, outcomes, strict=True)]

    async def read_files(
        self, location: ExecutionLocation, paths: Sequence[str]
    ) -> list[bytes | ConnectorError]:
        """Many small files read in one thread hop."""
        contents = await self._run(location, "(batch)", _each, _read_whole, [(p,) for p in paths])
        return [
            _translate(content, location, path) if isinstance(content, OSError) else content
            for path, content in zip(paths, contents, strict=True)
        ]

    async def write_files(
        self, location: ExecutionLocation, items: Sequence[WriteItem]
    ) -> list[ConnectorError | None]:
        """Many small files written, verified and published in one thread hop."""
        fsync = self.options.fsync
        calls = [(i.path, i.data, i.mode, i.mtime_ns, fsync, i.expected, i.atomic) for i in items]
        outcomes = await self._run(location, "(batch)", _each, _write_whole, calls)
        return [_outcome(location, i.path, o) for i, o in zip(items, outcomes, strict=True)]

    async def close(self) -> None:
        """Stop the thread pool after the calls in flight."""
        await asyncio.get_running_loop().run_in_executor(None, self._executor.shutdown)


class _LocalReader(Reader):
    def __init__(
        self, connector: LocalConnector, location: ExecutionLocation, path: str, fd: int
    ) -> None:
        self._connector = connector
        self._location = location
        self._path = path
        self._fd = fd

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

    async def write(self, offset: int, data: bytes | memoryview) -> None:
        await self._connector._run(self.location, self.path, _pwrite_all, self._fd, data, offset)

    async def digest(self) -> Digest:
        return await self._connector._run(self.location, self.path, _fd_digest, self._fd)

    async def _commit(self) -> None:
        fd, self._fd = self._fd, -1
        await self._connector._run(
            self.location,
            self.path,
            _finish,
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
        await self._connector._run(self.location, self.path, _discard, fd, self._target)

    @property
    def resume_token(self) -> str:
        return self._target

    async def _suspend(self) -> None:
        fd, self._fd = self._fd, -1
        await self._connector._run(self.location, self.path, os.close, fd)
