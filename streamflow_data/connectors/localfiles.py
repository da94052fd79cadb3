"""Blocking file operations of the local connector, each run in one of its threads.

:class:`~streamflow_data.connectors.local.LocalConnector` hands these to its thread pool,
one hop per call (a batch of small files is one hop through :func:`each`). Files are
created under a hidden temporary name when atomic and renamed into place by
:func:`finish`, so a reader never sees a partial file.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import stat as stat_module
from collections.abc import Callable, Generator, Sequence
from typing import TypeVar

from streamflow_data.checksum import crc32c_of_file, crc32c_of_pieces
from streamflow_data.connectors.base import FileKind, FileStat, WalkEntry
from streamflow_data.model import Digest, temporary_name

__all__ = [
    "UMASK",
    "FileIdentity",
    "change_since",
    "copy_contents",
    "copy_file",
    "create",
    "discard",
    "each",
    "fd_digest",
    "file_stat",
    "finish",
    "held_digest",
    "open_for_reading",
    "piece_digests",
    "pwrite_all",
    "read_whole",
    "remove",
    "reopen",
    "set_metadata",
    "stat",
    "symlink",
    "walk_batches",
    "write_read_back",
    "write_whole",
]

T = TypeVar("T")
_WALK_BATCH = 512
_COPY_FALLBACK_ERRNOS = {errno.EXDEV, errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP}


def file_stat(path: str, st: os.stat_result) -> FileStat:
    if stat_module.S_ISLNK(st.st_mode):
        return FileStat(FileKind.SYMLINK, st.st_size, 0o777, st.st_mtime_ns, os.readlink(path))
    kind = FileKind.DIRECTORY if stat_module.S_ISDIR(st.st_mode) else FileKind.FILE
    size = st.st_size if kind is FileKind.FILE else 0
    return FileStat(kind, size, stat_module.S_IMODE(st.st_mode), st.st_mtime_ns)


def stat(path: str, follow_symlinks: bool) -> FileStat:
    return file_stat(path, os.stat(path, follow_symlinks=follow_symlinks))


def walk_batches(root: str) -> Generator[list[WalkEntry], None, None]:
    """Depth-first listing in batches, so one thread hop serves many entries."""
    pending = [""]
    batch: list[WalkEntry] = []
    while pending:
        relative = pending.pop()
        with os.scandir(f"{root}/{relative}" if relative else root) as entries:
            for entry in entries:
                relpath = f"{relative}/{entry.name}" if relative else entry.name
                info = file_stat(entry.path, entry.stat(follow_symlinks=False))
                batch.append(WalkEntry(relpath, info))
                if info.kind is FileKind.DIRECTORY:
                    pending.append(relpath)
                if len(batch) >= _WALK_BATCH:
                    yield batch
                    batch = []
    if batch:
        yield batch


FileIdentity = tuple[int, int, int, int, int]
"""A file as opened: device, inode, size, modification and change times (ns)."""


def _identity(st: os.stat_result) -> FileIdentity:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def open_for_reading(path: str) -> tuple[int, FileIdentity]:
    """A descriptor of ``path`` for ``pread``, and what the file was when opened."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        return fd, _identity(os.fstat(fd))
    except BaseException:
        os.close(fd)
        raise


def change_since(fd: int, path: str, opened: FileIdentity) -> str | None:
    """How the file open as ``fd`` changed since it was ``opened``: written to (its size or
    times moved), or ``path`` removed or replaced by another file; None if it did not."""
    now = _identity(os.fstat(fd))
    if now[2] != opened[2]:
        return f"its size went from {opened[2]} to {now[2]} bytes while it was read"
    if now[3:] != opened[3:]:
        return "it was written to while it was read"
    try:
        named = os.stat(path)
    except FileNotFoundError:
        return "it was removed while it was read"
    if (named.st_dev, named.st_ino) != opened[:2]:
        return "another file replaced it while it was read"
    return None


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


UMASK = _process_umask()


def create(path: str, atomic: bool, mode: int | None) -> tuple[int, str]:
    """Create the file to write: a hidden temporary beside ``path``, or ``path`` itself.

    Opened read-write, so that the written bytes can be read back to verify them.
    """
    target = temporary_name(path) if atomic else path
    flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
    return os.open(target, flags, 0o666 if mode is None else mode & 0o777), target


def reopen(target: str) -> int:
    """Open an existing partial file for more writes; it must be a regular file."""
    fd = os.open(target, os.O_RDWR | os.O_CLOEXEC | os.O_NOFOLLOW)
    if not stat_module.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise FileNotFoundError(errno.ENOENT, "not a regular file", target)
    return fd


def pwrite_all(fd: int, data: bytes | memoryview, offset: int) -> None:
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, offset)
        view = view[written:]
        offset += written


def finish(
    fd: int, target: str, path: str, mode: int | None, mtime_ns: int | None, fsync: bool
) -> None:
    """Give the file its mode and time and close it; rename a temporary into place."""
    try:
        # Creation gave the file mode & 0o777 less the umask; fix it only where it differs.
        if mode is not None and (UMASK is None or mode & 0o777 & ~UMASK != mode):
            os.fchmod(fd, mode)
        if mtime_ns is not None:
            os.utime(fd, ns=(mtime_ns, mtime_ns))
        if fsync:
            os.fsync(fd)
    finally:
        os.close(fd)
    if target != path:
        os.rename(target, path)


def discard(fd: int | None, target: str) -> None:
    if fd is not None:
        with contextlib.suppress(OSError):
            os.close(fd)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(target)


def fd_digest(fd: int) -> Digest:
    """Size and CRC32C of an open file, read back from the storage."""
    return Digest(*crc32c_of_file(fd))


def _written_digest(fd: int, size: int) -> Digest:
    """:func:`fd_digest` of a small file just written with ``size`` bytes: one read of a
    byte more than that, which comes back short at the end of the file (a file holding
    something else is read whole)."""
    if size >= 1 << 20:
        return fd_digest(fd)
    data = os.pread(fd, size + 1, 0)
    return Digest.of(data) if len(data) == size else fd_digest(fd)


def write_read_back(fd: int, data: bytes | memoryview, offset: int) -> tuple[int, int]:
    """Write ``data`` at ``offset``, then read it back: the bytes the file holds there and
    their CRC32C."""
    pwrite_all(fd, data, offset)
    return crc32c_of_file(fd, offset, memoryview(data).nbytes)


def held_digest(fd: int, held: dict[int, tuple[int, int]]) -> Digest:
    """The file's digest from what was read back after each write, when those pieces are
    the whole file; else from reading all of it again."""
    size = os.fstat(fd).st_size
    value = crc32c_of_pieces(held, size)
    return Digest(size, value) if value is not None else fd_digest(fd)


def piece_digests(fd: int, start: int, piece: int) -> list[bytes]:
    """SHA-256 digests of the open file's runs of ``piece`` bytes from ``start`` on."""
    digests = []
    offset = start
    while data := os.pread(fd, piece, offset):
        digests.append(hashlib.sha256(data).digest())
        offset += len(data)
    return digests


def write_whole(
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

    def fill(fd: int) -> str | None:
        pwrite_all(fd, data, 0)
        if expected is not None and (actual := _written_digest(fd, len(data))) != expected:
            return f"expected {expected}, stored {actual}"
        return None

    return _created(path, atomic, mode, mtime_ns, fsync, fill)


def _created(
    path: str,
    atomic: bool,
    mode: int | None,
    mtime_ns: int | None,
    fsync: bool,
    fill: Callable[[int], str | None],
) -> str | None:
    """Create a file, have ``fill`` write it (returning why its content is wrong, if it
    is), and publish it; a file that is wrong or fails is removed."""
    fd, target = create(path, atomic, mode)
    try:
        wrong = fill(fd)
        if wrong is not None:
            discard(fd, target)
            return wrong
    except BaseException:
        discard(fd, target)
        raise
    try:
        finish(fd, target, path, mode, mtime_ns, fsync)
    except BaseException:
        discard(None, target)
        raise
    return None


def read_whole(path: str) -> tuple[bytes, str | None]:
    """A file's bytes, read without a buffered file object (that doubled the cost of each
    small file of a batch), and how the file changed while it was read (None if it did
    not: see :func:`change_since`)."""
    fd, opened = open_for_reading(path)
    try:
        data = os.read(fd, 64 * 1024)
        if data and (more := os.read(fd, 1 << 20)):
            parts = [data, more]
            while chunk := os.read(fd, 1 << 20):
                parts.append(chunk)
            data = b"".join(parts)
        return data, change_since(fd, path, opened)
    finally:
        os.close(fd)


def copy_contents(src_fd: int, dst_fd: int, size: int | None) -> int:
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
        pwrite_all(dst_fd, chunk, offset)
        offset += len(chunk)
    return offset


def copy_file(
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

    def fill(fd: int) -> str | None:
        copied = copy_contents(src_fd, fd, size)
        if size is not None and copied != size:
            return f"copied {copied} bytes where {size} were expected"
        return None

    try:
        return _created(dst, atomic, mode, mtime_ns, fsync, fill)
    finally:
        os.close(src_fd)


def symlink(target: str, path: str, mtime_ns: int | None = None) -> None:
    """A link made under a temporary name, given its time, and renamed over ``path``."""
    tmp = temporary_name(path)
    os.symlink(target, tmp)
    try:
        if mtime_ns is not None:
            os.utime(tmp, ns=(mtime_ns, mtime_ns), follow_symlinks=False)
        os.rename(tmp, path)
    except BaseException:
        discard(None, tmp)
        raise


def remove(path: str) -> None:
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return
    if stat_module.S_ISDIR(info.st_mode):
        import shutil  # here: with its archive modules it costs ~10 ms of start-up

        shutil.rmtree(path)
    else:
        os.unlink(path)


def each(function: Callable[..., T], calls: Sequence[tuple[object, ...]]) -> list[T | OSError]:
    """Call ``function`` with each argument tuple; an OSError becomes that call's result."""
    results: list[T | OSError] = []
    for arguments in calls:
        try:
            results.append(function(*arguments))
        except OSError as exc:
            results.append(exc)
    return results


def set_metadata(path: str, mode: int | None, mtime_ns: int | None) -> None:
    if mode is not None:
        os.chmod(path, mode)
    if mtime_ns is not None:
        os.utime(path, ns=(mtime_ns, mtime_ns))
