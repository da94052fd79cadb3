"""Value types shared by every layer: where data lives and what kind of replica it is."""

from __future__ import annotations

import asyncio
import enum
import os
import posixpath
import re
from dataclasses import dataclass

from streamflow_data.checksum import crc32c, crc32c_base64
from streamflow_data.errors import InvalidPathError
from streamflow_data.location import ExecutionLocation

__all__ = [
    "DataLocation",
    "DataType",
    "Digest",
    "ExecutionLocation",
    "Verification",
    "check_partial_file",
    "is_temporary_name",
    "is_temporary_of",
    "normalize_path",
    "relpath_fault",
    "temporary_name",
    "temporary_prefix",
]


class DataType(enum.Enum):
    """The nature of a registered replica."""

    PRIMARY = "primary"
    """Actual data, a file or directory that can serve as a transfer source."""
    SYMBOLIC_LINK = "symbolic_link"
    """A link pointing at a PRIMARY replica on the same location."""
    INVALID = "invalid"
    """No longer usable; never returned by queries."""


class Verification(enum.Enum):
    """What the check of a copy proved about the bytes stored, strongest first.

    Writers and connectors declare theirs (:attr:`Writer.verification`,
    :attr:`Capabilities.verification`); the engine reports, per destination, the weakest
    its files got (:attr:`DestinationProgress.verification`).
    """

    STORED = "stored"
    """The bytes were read back from the storage and checksummed, or hashed where they are
    stored (``checksum = "sha256"``)."""
    RECEIVED = "received"
    """The storage checked each piece as it received it, against a checksum sent along."""
    SENT = "sent"
    """The bytes this process sent were checksummed, and the stored size compared."""
    SIZE = "size"
    """Only the stored size was compared (bytes moved by a program of this machine that
    reads or writes the file itself, or copied within the storage)."""
    NONE = "none"
    """Nothing was compared: ``TransferSettings.verify_writes`` is off."""

    def weakest(self, other: Verification) -> Verification:
        """The weaker of this kind and ``other``."""
        if other is self:
            return self
        return max(self, other, key=_VERIFICATION_ORDER.index)


_VERIFICATION_ORDER = list(Verification)
"""The kinds of :class:`Verification`, strongest first."""


@dataclass(frozen=True, slots=True)
class Digest:
    """What a file's bytes must be: their number and their CRC32C."""

    size: int
    crc32c: int

    @classmethod
    def of(cls, data: bytes | bytearray | memoryview) -> Digest:
        """The digest of ``data`` (computed on the calling thread)."""
        return cls(len(data), crc32c(data))

    def __str__(self) -> str:
        return f"{self.size} bytes, crc32c {crc32c_base64(self.crc32c)}"


def normalize_path(path: str) -> str:
    """Return ``path`` in the canonical form the replica graph indexes.

    Paths are POSIX and absolute; ``.``, ``..``, repeated and trailing slashes are folded.
    Raises :class:`InvalidPathError` for a relative or empty path, one holding a NUL
    byte (no file system can store it, and an SSH server drops the connection it meets
    one on), or one that is not UTF-8 (undecodable bytes as surrogate escapes, as
    :func:`os.fsdecode` gives them), which the catalog cannot record.
    """
    if not path.startswith("/"):
        raise InvalidPathError(f"path must be absolute, got {path!r}")
    if "\0" in path:
        raise InvalidPathError(f"path holds a NUL byte: {path!r}")
    if not path.isascii():
        try:
            path.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidPathError(
                f"path is not UTF-8 (the catalog records paths as UTF-8 text): {path!r}; "
                "name the directory that holds it instead (names inside a copied tree "
                "may be any bytes)"
            ) from None
    normalized = posixpath.normpath(path)
    if normalized.startswith("//"):
        normalized = "/" + normalized.lstrip("/")
    return normalized


def relpath_fault(relpath: str) -> str | None:
    """Why ``relpath``, a name a connector listed below a walk's root, cannot be joined to
    a destination root; None when it is a plain relative path that stays below it.

    Names from connectors cross a trust boundary (a host's ``find``, a bucket's keys): the
    engine refuses absolute names, empty, ``.`` and ``..`` components and NUL bytes.
    """
    if not relpath:
        return "an empty name"
    if "\0" in relpath:
        return "a NUL byte in the name"
    if relpath.startswith("/"):
        return "an absolute name"
    for part in relpath.split("/"):
        if not part:
            return "an empty component"
        if part in (".", ".."):
            return f"a {part!r} component"
    return None


def temporary_name(path: str) -> str:
    """A hidden, unique name beside ``path`` (``.NAME.XXXXXXXXXXXX.sfd-part``).

    Files and staging trees are written under such a name and renamed to ``path`` when
    complete; the suffix tells leftovers apart. The name part is cut to fit NAME_MAX.
    """
    return f"{temporary_prefix(path)}{os.urandom(6).hex()}.sfd-part"


def temporary_prefix(path: str) -> str:
    """What every :func:`temporary_name` of ``path`` starts with (``DIR/.NAME.``): the
    prefix to list them by."""
    directory, _, name = path.rpartition("/")
    return f"{directory}/.{name[:200]}."


_TEMPORARY = re.compile(r"\..+\.[0-9a-f]{12}\.sfd-part")


def is_temporary_name(name: str) -> bool:
    """Whether ``name``, one path component, is a name :func:`temporary_name` gives: a
    partial file, a staging tree or a connector's marker, never data to copy."""
    return _TEMPORARY.fullmatch(name) is not None


def is_temporary_of(candidate: str, path: str) -> bool:
    """Whether ``candidate`` is a name :func:`temporary_name` could give for ``path``.

    Resume tokens read back from a catalog file are checked with it before a connector
    opens them, so that a tampered file cannot point a write elsewhere.
    """
    pattern = re.escape(temporary_prefix(path)) + r"[0-9a-f]{12}\.sfd-part"
    return re.fullmatch(pattern, candidate) is not None


def check_partial_file(token: str, path: str, atomic: bool) -> None:
    """Refuse, with :class:`InvalidPathError`, a resume token that names no partial file
    of ``path``: a temporary of it, or (not ``atomic``: inside a staging tree) ``path``
    itself."""
    if not (is_temporary_of(token, path) if atomic else token == path):
        raise InvalidPathError(f"{token!r} is not a partial file of {path!r}")


class DataLocation:
    """One replica: the data at ``path`` on ``location``.

    The replica graph owns these objects and updates ``data_type`` in place, so a holder
    always sees whether its replica became INVALID. A replica that a transfer is still
    writing is *not yet available*: :meth:`wait_available` returns once the copy either
    completed or failed (check ``data_type`` afterwards).
    """

    __slots__ = ("_ready", "data_type", "location", "path", "relpath")

    def __init__(
        self,
        location: ExecutionLocation,
        path: str,
        relpath: str | None = None,
        data_type: DataType = DataType.PRIMARY,
        *,
        available: bool = True,
    ) -> None:
        self.location = location
        """The execution location holding the replica."""
        self.path = path
        """The absolute path of the replica on its location."""
        self.relpath = path if relpath is None else relpath
        """The portion of ``path`` that matters to the workflow (the whole path by default)."""
        self.data_type = data_type
        """PRIMARY, SYMBOLIC_LINK or INVALID; INVALID once the replica was invalidated."""
        self._ready: asyncio.Event | None = None if available else asyncio.Event()

    @property
    def deployment(self) -> str:
        """The deployment of the replica's location."""
        return self.location.deployment

    @property
    def name(self) -> str:
        """The name of the replica's location."""
        return self.location.name

    @property
    def available(self) -> bool:
        """False while a transfer is still writing this replica."""
        return self._ready is None or self._ready.is_set()

    @property
    def valid(self) -> bool:
        """True unless the replica has been invalidated."""
        return self.data_type is not DataType.INVALID

    async def wait_available(self) -> None:
        """Wait until the transfer writing this replica has completed or failed."""
        if self._ready is not None:
            await self._ready.wait()

    def mark_available(self) -> None:
        """Wake every waiter: the transfer writing this replica has ended, well or not (the
        data manager and its replica graph call it; ``data_type`` says which)."""
        if self._ready is not None:
            self._ready.set()

    def __repr__(self) -> str:
        state = "" if self.available else ", pending"
        return f"DataLocation({self.location}:{self.path}, {self.data_type.name}{state})"
