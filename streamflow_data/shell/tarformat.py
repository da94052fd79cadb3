"""Members of a POSIX (PAX) tar archive, encoded directly.

Only what :mod:`~streamflow_data.shell.packing` writes: regular files with a name, a mode, a
size and a nanosecond mtime, and directories with a name, a mode and an mtime, owned by
nobody in particular (``tar x --no-same-owner``). Python's :mod:`tarfile` builds the same
members through ``TarInfo`` objects, copies and per-field checks; for thousands of small
files that was a fifth of a batch's time.

Each member is a PAX extended header carrying ``mtime`` (and ``path`` or ``size`` when
the ustar fields cannot hold them), a ustar header, and a file's data padded to 512
bytes. An archive is a list of buffers, the files' data among them as given: it goes to
the host with one gathered write per thousand pieces, and is never copied into one buffer
here.
"""

from __future__ import annotations

import functools
import zlib
from collections.abc import Iterable, Sequence

from streamflow_data.shell.commands import Buffer, decimal_seconds

__all__ = ["archive", "directory", "member"]

BLOCK = 512
RECORD = 20 * BLOCK
"""GNU tar's default record: archives are padded to a multiple of it, as tar writes them."""
_NAME_FIELD = 100
_MAX_OCTAL = 8**11 - 1
"""The largest number the ustar size and time fields (11 octal digits) hold."""
_PAX_NAME = b"././@PaxHeader"
_MAGIC = b"ustar\x0000"
_ZEROS = memoryview(bytes(RECORD + 2 * BLOCK))


_OWNER = b"0000000\0" * 2
"""uid and gid, 0: ``tar x --no-same-owner`` gives files to whoever unpacks them."""
_TAIL = bytes(100) + _MAGIC + bytes(BLOCK - 265)
"""Everything after the type flag: no link name, the magic, no owner names or device."""
_CONSTANT_SUM = 8 * ord(" ") + sum(_TAIL)
"""The checksum's share of the fields after the first piece (its own counted as spaces)."""


def _header(name: bytes, mode: int, size: int, mtime: int, kind: bytes) -> bytes:
    """One 512-byte ustar header, built in a piece and a tail whose checksum is known (a
    thousand headers per batch of small files)."""
    head = b"%s%07o\0%s%011o\0%011o\0" % (
        name.ljust(_NAME_FIELD, b"\0"),
        mode & 0o7777,
        _OWNER,
        size,
        mtime,
    )
    # Adler-32's low half is 1 + the byte sum modulo 65,521, and 148 bytes sum to 37,740 at
    # most: the sum in C, where sum() walked the bytes one by one (1.6 us of 5 per member).
    checksum = (zlib.adler32(head) & 0xFFFF) - 1 + _CONSTANT_SUM + kind[0]
    return b"%s%06o\0 %s%s" % (head, checksum, kind, _TAIL)


@functools.lru_cache(maxsize=1024)
def _pax_header(length: int, mtime: int) -> bytes:
    """The ustar header of a PAX extended header: the same for every file of a second
    whose records have the same length."""
    return _header(_PAX_NAME, 0o644, length, mtime, b"x")


def _padding(size: int) -> memoryview:
    """The zeros that fill ``size`` bytes up to a whole block."""
    return _ZEROS[: -size % BLOCK]


def _record(key: bytes, value: bytes) -> bytes:
    """One PAX record, ``"<length> <key>=<value>\\n"``, its length counting itself."""
    body = b" %s=%s\n" % (key, value)
    length = len(body) + 2
    while len(b"%d" % length) + len(body) != length:
        length = len(b"%d" % length) + len(body)
    return b"%d%s" % (length, body)


def member(name: str, mode: int, data: Buffer, mtime_ns: int) -> tuple[Buffer, ...]:
    """A regular file ``name`` (relative, ``/``-separated) holding ``data``: its headers,
    ``data`` itself and its padding."""
    size = len(data)
    return _headers(name, mode, size, mtime_ns, b"0"), data, _padding(size)


def directory(name: str, mode: int, mtime_ns: int) -> bytes:
    """A directory ``name``: unpacked over an existing directory, it gives it ``mode`` and
    the time (``tar x`` sets both once the archive is read)."""
    return _headers(name, mode, 0, mtime_ns, b"5")


def _headers(name: str, mode: int, size: int, mtime_ns: int, kind: bytes) -> bytes:
    """A member's PAX extended header and its ustar header."""
    extended = _record(b"mtime", decimal_seconds(mtime_ns).encode())
    seconds = min(max(mtime_ns // 1_000_000_000, 0), _MAX_OCTAL)  # PAX holds the exact time
    encoded = name.encode("utf-8", "surrogateescape")
    if len(encoded) > _NAME_FIELD or not name.isascii():
        extended += _record(b"path", encoded)
        encoded = encoded[:_NAME_FIELD]
    if size > _MAX_OCTAL:
        extended += _record(b"size", b"%d" % size)
    return b"".join(
        (
            _pax_header(len(extended), seconds),
            extended,
            _padding(len(extended)),
            _header(encoded, mode, min(size, _MAX_OCTAL), seconds, kind),
        )
    )


def archive(members: Iterable[Sequence[Buffer]]) -> list[Buffer]:
    """The members' pieces, then the two zero blocks that end an archive, padded to a
    record."""
    pieces = [piece for parts in members for piece in parts]
    size = sum(len(piece) for piece in pieces) + 2 * BLOCK
    pieces.append(_ZEROS[: 2 * BLOCK + -size % RECORD])
    return pieces
