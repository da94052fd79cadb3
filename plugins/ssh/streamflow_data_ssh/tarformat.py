"""Regular-file members of a POSIX (PAX) tar archive, encoded directly.

Only what :mod:`~streamflow_data_ssh.packing` writes: regular files with a name, a mode, a
size and a nanosecond mtime, owned by nobody in particular (``tar x --no-same-owner``).
Python's :mod:`tarfile` builds the same members through ``TarInfo`` objects, copies and
per-field checks; for thousands of small files that was a fifth of a batch's time.

Each member is a PAX extended header carrying ``mtime`` (and ``path`` or ``size`` when
the ustar fields cannot hold them), a ustar header, and the data padded to 512 bytes. An
archive is a list of buffers, the files' data among them as given: it goes to the host
with one gathered write per thousand pieces, and is never copied into one buffer here.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from streamflow_data_ssh.remote import Buffer, decimal_seconds

__all__ = ["archive", "member"]

BLOCK = 512
RECORD = 20 * BLOCK
"""GNU tar's default record: archives are padded to a multiple of it, as tar writes them."""
_NAME_FIELD = 100
_MAX_SIZE = 8**11 - 1
"""The largest size the ustar size field (11 octal digits) holds."""
_PAX_NAME = b"././@PaxHeader"
_MAGIC = b"ustar\x0000"
_ZEROS = memoryview(bytes(RECORD + 2 * BLOCK))


def _template() -> bytes:
    """A ustar header's constant fields (owner 0:0, checksum as spaces, magic)."""
    head = bytearray(BLOCK)
    head[108:116] = b"0000000\0"  # uid
    head[116:124] = b"0000000\0"  # gid
    head[148:156] = b" " * 8  # the checksum counts its own field as spaces
    head[257:265] = _MAGIC
    return bytes(head)


_TEMPLATE = _template()
_TEMPLATE_SUM = sum(_TEMPLATE)


def _header(name: bytes, mode: int, size: int, mtime: int, kind: bytes) -> bytes:
    """One 512-byte ustar header: the constant fields' bytes and checksum are computed once,
    the others filled in (a thousand headers per batch of small files)."""
    mode_field = b"%07o\0" % (mode & 0o7777)
    size_field = b"%011o\0" % size
    time_field = b"%011o\0" % mtime
    head = bytearray(_TEMPLATE)
    head[: len(name)] = name
    head[100:108] = mode_field
    head[124:136] = size_field
    head[136:148] = time_field
    head[156:157] = kind
    checksum = _TEMPLATE_SUM + sum(name) + sum(mode_field) + sum(size_field)
    head[148:156] = b"%06o\0 " % (checksum + sum(time_field) + kind[0])
    return bytes(head)


def _padding(size: int) -> memoryview:
    """The zeros that fill ``size`` bytes up to a whole block."""
    return _ZEROS[: -size % BLOCK]


def _record(key: str, value: str) -> bytes:
    """One PAX record, ``"<length> <key>=<value>\\n"``, its length counting itself."""
    body = f" {key}={value}\n".encode("utf-8", "surrogateescape")
    length = len(body)
    while len(str(length)) + len(body) != length:
        length = len(str(length)) + len(body)
    return str(length).encode() + body


def member(name: str, mode: int, data: Buffer, mtime_ns: int) -> tuple[Buffer, ...]:
    """A regular file ``name`` (relative, ``/``-separated) holding ``data``: its headers,
    ``data`` itself and its padding."""
    records = [_record("mtime", decimal_seconds(mtime_ns))]
    seconds = max(mtime_ns // 1_000_000_000, 0)
    encoded = name.encode("utf-8", "surrogateescape")
    if len(encoded) > _NAME_FIELD or not name.isascii():
        records.append(_record("path", name))
        encoded = encoded[:_NAME_FIELD]
    size = len(data)
    if size > _MAX_SIZE:
        records.append(_record("size", str(size)))
    extended = b"".join(records)
    headers = b"".join(
        (
            _header(_PAX_NAME, 0o644, len(extended), seconds, b"x"),
            extended,
            _padding(len(extended)),
            _header(encoded, mode, min(size, _MAX_SIZE), seconds, b"0"),
        )
    )
    return headers, data, _padding(size)


def archive(members: Iterable[Sequence[Buffer]]) -> list[Buffer]:
    """The members' pieces, then the two zero blocks that end an archive, padded to a
    record."""
    pieces = [piece for parts in members for piece in parts]
    size = sum(len(piece) for piece in pieces) + 2 * BLOCK
    pieces.append(_ZEROS[: 2 * BLOCK + -size % RECORD])
    return pieces
