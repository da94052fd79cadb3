"""Tar archives encoded and decoded directly, without :mod:`tarfile`.

Writing covers only what :mod:`~streamflow_data.shell.packing` writes: regular files
with a name, a mode, a size and a nanosecond mtime, and directories with a name, a mode
and an mtime, owned by nobody in particular (``tar x --no-same-owner``). Python's
:mod:`tarfile` builds the same members through ``TarInfo`` objects, copies and per-field
checks; for thousands of small files that was a fifth of a batch's time.

Each member is a PAX extended header carrying ``mtime`` (and ``path`` or ``size`` when
the ustar fields cannot hold them), a ustar header, and a file's data padded to 512
bytes. An archive is a list of buffers, the files' data among them as given: it goes to
the host with one gathered write per thousand pieces, and is never copied into one buffer
here.

Reading (:func:`unpack`) takes what ``tar c`` writes on a host: GNU, POSIX ustar and PAX
headers and GNU long names; a hard link to an earlier member (``tar c`` writes one
for a second name of the same file) comes back as a regular file with its bytes.
:mod:`tarfile` spent about 40 us on each member of a batch of small files, most of it
building ``TarInfo`` objects.
"""

from __future__ import annotations

import functools
import zlib
from collections.abc import Iterable, Iterator, Sequence
from typing import NamedTuple

from streamflow_data.shell.commands import Buffer, decimal_seconds

__all__ = ["ArchiveError", "Unpacked", "archive", "directory", "member", "unpack"]

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


def _byte_sum(data: bytes) -> int:
    """The sum of ``data``'s bytes, in C: Adler-32's low half is 1 + the byte sum modulo
    65,521, exact for up to 256 bytes at a time (sum() walked the bytes one by one: 1.6 us
    of a member's 5 when writing)."""
    return sum(
        (zlib.adler32(data[start : start + 256]) & 0xFFFF) - 1 for start in range(0, len(data), 256)
    )


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
    checksum = _byte_sum(head) + _CONSTANT_SUM + kind[0]
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


class ArchiveError(ValueError):
    """The bytes are not a well-formed tar archive."""


class Unpacked(NamedTuple):
    """One member of an archive read by :func:`unpack`."""

    name: str
    """As stored (``surrogateescape`` for bytes that are not UTF-8); a directory's without
    its trailing ``/``."""
    kind: bytes
    """The type flag: ``b"0"`` a regular file, ``b"5"`` a directory, ``b"1"`` a hard
    link to a file not in the archive, ``b"2"`` a symbolic link, ..."""
    data: bytes
    """A regular file's bytes."""
    link: str
    """A link's target name."""


_REGULAR = (b"0", b"\0", b"7")
_ZERO_BLOCK = bytes(BLOCK)


def unpack(data: bytes) -> Iterator[Unpacked]:
    """The members of the archive ``data``, in order, each header's checksum checked.

    Raises :class:`ArchiveError` for a damaged archive or one cut inside a member; one
    that ends without its two zero blocks ends there, as :mod:`tarfile` reads it."""
    offset, end = 0, len(data)
    regular: dict[str, bytes] = {}
    extended: dict[bytes, bytes] = {}
    long_names: dict[bytes, bytes] = {}
    while offset < end:
        header = data[offset : offset + BLOCK]
        if header == _ZERO_BLOCK:
            return
        if len(header) < BLOCK:
            raise ArchiveError("the archive ends inside a header")
        _check(header)
        kind = header[156:157]
        size = _number(extended[b"size"]) if b"size" in extended else _field(header, 124, 12)
        start = offset + BLOCK
        offset = start + size + -size % BLOCK
        if offset > end:
            raise ArchiveError("the archive ends inside a member")
        body = data[start : start + size]
        if kind in (b"L", b"K"):  # GNU: the next member's long name or link target
            long_names[kind] = body.split(b"\0", 1)[0]
            continue
        if kind in (b"x", b"g"):
            if kind == b"x":
                extended = _pax_records(body)
            continue
        name = _name(header, extended.get(b"path") or long_names.get(b"L"))
        link = extended.get(b"linkpath") or long_names.get(b"K") or _text(header[157:257])
        extended, long_names = {}, {}
        if kind in _REGULAR and name.endswith("/"):  # a directory, as old tars wrote it
            kind = b"5"
        if kind == b"5":
            yield Unpacked(name.rstrip("/"), kind, b"", "")
            continue
        target = link.decode("utf-8", "surrogateescape")
        if kind == b"1" and target in regular:
            kind, body = b"0", regular[target]
        if kind in _REGULAR:
            regular[name] = body
            yield Unpacked(name, b"0", body, "")
        else:
            yield Unpacked(name, kind, body, target)


def _check(header: bytes) -> None:
    """The checksum: the sum of the header's bytes, its own field as spaces; unsigned, or
    signed as some old tars summed them (as :mod:`tarfile` accepts either)."""
    stored = _field(header, 148, 8)
    total = _byte_sum(header[:148]) + 8 * ord(" ") + _byte_sum(header[156:])
    if stored != total and stored != total - 256 * sum(byte >= 0x80 for byte in header):
        raise ArchiveError("a header's checksum is wrong")


def _field(header: bytes, start: int, length: int) -> int:
    return _number(header[start : start + length], octal=True)


def _number(field: bytes, *, octal: bool = False) -> int:
    """A number field: octal digits (ustar) or base-256 (GNU, first bit set); or a PAX
    record's decimal digits."""
    if octal and field[:1] and field[0] & 0x80:
        if field[0] == 0xFF:
            raise ArchiveError("a negative number in a header")
        return int.from_bytes(field, "big") & ~(0x80 << (8 * (len(field) - 1)))
    digits = field.split(b"\0", 1)[0].strip()
    try:
        return int(digits or b"0", 8 if octal else 10)
    except ValueError:
        raise ArchiveError(f"a header's number is not one: {digits!r}") from None


def _text(field: bytes) -> bytes:
    return field.split(b"\0", 1)[0]


def _name(header: bytes, long_name: bytes | None) -> str:
    """The member's name: a PAX or GNU long name, else the name field behind the POSIX
    ustar prefix."""
    name = long_name
    if name is None:
        name = _text(header[:100])
        if header[257:263] == _MAGIC[:6] and (prefix := _text(header[345:500])):
            name = prefix + b"/" + name
    return name.decode("utf-8", "surrogateescape")


def _pax_records(body: bytes) -> dict[bytes, bytes]:
    """A PAX extended header's ``"<length> <key>=<value>\\n"`` records."""
    records: dict[bytes, bytes] = {}
    position = 0
    while position < len(body) and body[position] != 0:
        space = body.find(b" ", position)
        try:
            length = int(body[position:space])
        except ValueError:
            raise ArchiveError("a PAX record has no length") from None
        record = body[space + 1 : position + length]
        if length <= 0 or not record.endswith(b"\n") or b"=" not in record:
            raise ArchiveError("a PAX record is malformed")
        key, value = record[:-1].split(b"=", 1)
        records[key] = value
        position += length
    return records
