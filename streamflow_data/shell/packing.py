"""Many small files in one round trip: a tar stream unpacked by ``tar x`` on the host.

A batch of :class:`~streamflow_data.connectors.base.WriteItem` becomes one archive (PAX,
so modes and nanosecond mtimes survive) and one shell script run with the archive on its
standard input. The script checks each directory of the batch first, once (the files of
a missing one are excluded, never given a directory tar would invent), unpacks, compares the
SHA-256 of the stream as it arrived with ours, and renames the files written under
temporary names. A batch that fails as a whole removes everything it wrote.

Reading is the reverse: ``tar c`` on the host, parsed here in memory. Only regular files
with the requested names are accepted from it, as tarfile's ``data`` filter would: an
absolute name, a ``..`` component or a symbolic link is refused, and a hard link only
stands for a file read earlier in the same stream (a second name of one file).
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import re
import time
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass

from streamflow_data.connectors.base import WriteItem
from streamflow_data.errors import (
    ChecksumMismatchError,
    ConnectorError,
    PathExistsError,
    PathNotFoundError,
    PermissionDeniedError,
    SourceChangedError,
)
from streamflow_data.location import ExecutionLocation
from streamflow_data.model import Digest, temporary_name
from streamflow_data.shell import tarformat
from streamflow_data.shell.commands import (
    EXIT_MISMATCH,
    Buffer,
    Completed,
    command_error,
    quote,
    relative,
    sha256_hex,
    status_pipeline,
)

__all__ = [
    "EXIT_NOT_DIRECTORIES",
    "PackedWrite",
    "hashed_files",
    "pack_directories",
    "pack_writes",
    "read_archive",
    "read_command",
    "write_results",
]

EXIT_UNPACK = 69
EXIT_NOT_DIRECTORIES = 70
"""A :func:`pack_directories` script found a path that is not a directory (nothing changed)."""
_SCRIPT_BUDGET = 96 * 1024
"""Bytes of script per batch at most: the host's shell gets it as one argument, and Linux
caps one argument at 128 KiB."""
_LINE = re.compile(r"^(missing|failed) (\d+)$", re.MULTILINE)


def _clean(path: str) -> bool:
    return path.startswith("/") and posixpath.normpath(path) == path


@dataclass(slots=True)
class PackedWrite:
    """One round trip's worth of a bulk write."""

    indexes: list[int]
    """Positions, in the caller's item list, of the files this batch carries."""
    written: list[str]
    """The name each of those files is unpacked under (a temporary one when atomic)."""
    directories: list[int]
    """The number, in the script, of each file's directory (what ``missing N`` names)."""
    archive: list[Buffer]
    """The archive's pieces, the files' data among them (see :mod:`.tarformat`)."""
    script: str


def pack_writes(
    location: ExecutionLocation,
    items: Sequence[WriteItem],
    umask: int,
    hash_command: str | None,
) -> tuple[list[PackedWrite], dict[int, ConnectorError]]:
    """Split ``items`` into archives with their scripts; items refused before any byte
    moves (a name that leaves its directory, data that does not match ``expected``) are
    returned with their error."""
    refused: dict[int, ConnectorError] = {}
    batches: list[PackedWrite] = []
    batch = _Batch()
    for index, item in enumerate(items):
        if not _clean(item.path):
            detail = "refused: not a plain absolute path"
            refused[index] = PermissionDeniedError(location, item.path, detail)
            continue
        if item.expected is not None:
            given = Digest.of(item.data)
            if given != item.expected:
                detail = f"expected {item.expected}, given {given}"
                refused[index] = ChecksumMismatchError(location, item.path, detail)
                continue
        written = temporary_name(item.path) if item.atomic else item.path
        if not batch.add(index, item, written):
            batches.append(batch.pack(umask, hash_command))
            batch = _Batch()
            batch.add(index, item, written)  # an empty batch takes any file
    if batch.entries:
        batches.append(batch.pack(umask, hash_command))
    return batches, refused


@dataclass(slots=True)
class _Entry:
    """One file of a batch."""

    index: int
    item: WriteItem
    written: str
    parent: str
    quoted: str
    """``written`` relative to ``/``, quoted for the shell."""


class _Batch:
    """The files of one archive, and the directories they go to (each checked once)."""

    def __init__(self) -> None:
        self.entries: list[_Entry] = []
        self.parents: dict[str, int] = {}
        """Each directory written to, with its number in the script."""
        self.names: set[str] = set()
        self.budget = 0

    def add(self, index: int, item: WriteItem, written: str) -> bool:
        """Take the file unless the batch has some and the file does not fit the script,
        or one of them is the other's directory (excluding a missing directory excludes
        a file of that name too)."""
        parent = posixpath.dirname(item.path)
        if self.entries and (
            parent in self.names or written in self.parents or item.path in self.parents
        ):
            return False
        entry = _Entry(index, item, written, parent, quote(relative(written)))
        cost = len(entry.quoted) + 1  # in the list of names removed on failure
        if item.atomic:
            cost += len(entry.quoted) + len(quote(relative(item.path))) + 60
        if parent not in self.parents:
            cost += 2 * len(quote(relative(parent))) + 80
        if self.entries and self.budget + cost > _SCRIPT_BUDGET:
            return False
        self.budget += cost
        self.parents.setdefault(parent, len(self.parents))
        self.names.update((written, item.path))
        self.entries.append(entry)
        return True

    def pack(self, umask: int, hash_command: str | None) -> PackedWrite:
        now_ns = time.time_ns()
        default_mode = 0o666 & ~umask
        data = tarformat.archive(
            tarformat.member(
                relative(entry.written),
                entry.item.mode if entry.item.mode is not None else default_mode,
                entry.item.data,
                entry.item.mtime_ns if entry.item.mtime_ns is not None else now_ns,
            )
            for entry in self.entries
        )
        sha256 = ""
        if hash_command is not None:
            digest = hashlib.sha256()
            for piece in data:
                digest.update(piece)
            sha256 = digest.hexdigest()
        return PackedWrite(
            indexes=[entry.index for entry in self.entries],
            written=[entry.written for entry in self.entries],
            directories=[self.parents[entry.parent] for entry in self.entries],
            archive=data,
            script=self._script(sha256, hash_command),
        )

    def _script(self, sha256: str, hash_command: str | None) -> str:
        lines = ["cd / || exit 1", "set --"]
        for number, parent in enumerate(self.parents):
            name = quote(relative(parent))
            lines.append(
                f"[ -d {name} ] || {{ echo 'missing {number}'; m{number}=1; "
                f'set -- "$@" --exclude={name}; }}'
            )
        unpack = 'tar -x -f - -p --no-same-owner --anchored --no-wildcards "$@" >&2'
        lines.append(f"out=$({status_pipeline(unpack, 'tar', hash_command)})")
        everything = " ".join(entry.quoted for entry in self.entries)
        lines.append('printf "%s\\n" "$out"')
        lines.append(
            f'case "$out" in *tar=0*) ;; *) rm -f -- {everything}; exit {EXIT_UNPACK};; esac'
        )
        if hash_command is not None:
            lines.append(
                f'case "$out" in *{sha256}*) ;; '
                f"*) rm -f -- {everything}; exit {EXIT_MISMATCH};; esac"
            )
        for number, entry in enumerate(self.entries):
            if entry.item.atomic:
                move = f"mv -fT -- {entry.quoted} {quote(relative(entry.item.path))}"
                check = f'[ -n "$m{self.parents[entry.parent]}" ]'
                lines.append(f'{check} || {move} || echo "failed {number}"')
        return "\n".join(lines)


def write_results(
    location: ExecutionLocation, items: Sequence[WriteItem], batch: PackedWrite, result: Completed
) -> dict[int, ConnectorError | None]:
    """Each file's outcome from what the batch's script printed."""
    outcomes: dict[int, ConnectorError | None] = {}
    if result.status not in (0, EXIT_UNPACK, EXIT_MISMATCH):
        for index in batch.indexes:
            outcomes[index] = command_error(result, location, items[index].path, "tar")
        return outcomes
    marked = _LINE.findall(result.stdout.decode())
    missing = {int(number) for word, number in marked if word == "missing"}
    failed = {int(number) for word, number in marked if word == "failed"}
    for number, index in enumerate(batch.indexes):
        path = items[index].path
        if batch.directories[number] in missing:
            outcomes[index] = PathNotFoundError(location, path)
        elif result.status == EXIT_MISMATCH:
            outcomes[index] = command_error(result, location, path)
        elif result.status == EXIT_UNPACK or number in failed:
            outcomes[index] = _member_error(location, path, batch.written[number], result.stderr)
        else:
            outcomes[index] = None
    return outcomes


def _naming(stderr: str, names: Collection[str]) -> Iterator[str]:
    """The lines of a command's ``stderr`` that name one of ``names`` (as ``NAME: ...`` or
    ``'NAME'``, the forms GNU tools use)."""
    for line in stderr.splitlines():
        if any(f" {name}: " in line or f"'{name}'" in line for name in names):
            yield line


def _named_error(
    location: ExecutionLocation,
    path: str,
    names: Collection[str],
    stderr: str,
    what: str,
    failed: str,
) -> ConnectorError:
    """The error the command ``what`` reported in the first line naming one of ``names``,
    else a retryable one saying ``failed``, with the first line it printed."""
    line = next(_naming(stderr, names), None)
    if line is not None:
        return command_error(Completed(1, b"", line), location, path, what)
    first = stderr.strip().splitlines()[:1]
    return ConnectorError(location, path, f"{failed}: {first[0] if first else what}")


def _member_error(location: ExecutionLocation, path: str, name: str, stderr: str) -> ConnectorError:
    """The error tar or mv reported for the file written as ``name`` (tar names it, mv
    names it or, failing to publish it, ``path``), else a retryable one for the whole
    batch."""
    names = {relative(name), relative(path)}
    return _named_error(location, path, names, stderr, "tar", "its batch failed")


def pack_directories(
    items: Sequence[tuple[str, int | None, int | None]], then: str | None = None
) -> list[tuple[str, list[Buffer]]] | None:
    """Scripts, each with its archive, that give existing directories their (path, mode,
    mtime_ns) with one ``tar x`` per command line's worth of names; None when an item lacks
    a mode or a time (an archive's member sets both) or is ``/``. The last script runs the
    command ``then``, if given, once its archive is unpacked.

    ``tar x`` sets the mode and time of a directory member that already exists once it has
    read the archive, deepest first as given: for 100 directories it took 2.5 ms, where a
    ``touch`` per distinct time took 57 ms. It would also replace a file or a link by an
    empty directory, so each script first checks that every path is a directory and not a
    link, and exits with :data:`EXIT_NOT_DIRECTORIES` before changing anything if not.
    """
    directories: list[tuple[str, int, int]] = []
    for path, mode, mtime_ns in items:
        if mode is None or mtime_ns is None or path == "/":
            return None
        directories.append((path, mode, mtime_ns))
    packed: list[tuple[str, list[Buffer]]] = []
    names: list[str] = []
    members: list[Buffer] = []
    budget = 0
    for path, mode, mtime_ns in directories:
        name = relative(path)
        quoted = quote(name)
        if names and budget + len(quoted) + 1 > _SCRIPT_BUDGET:
            packed.append(_directories_script(names, members))
            names, members, budget = [], [], 0
        names.append(quoted)
        members.append(tarformat.directory(name, mode, mtime_ns))
        budget += len(quoted) + 1
    if names:
        packed.append(_directories_script(names, members, then))
    return packed


def _directories_script(
    names: list[str], members: list[Buffer], then: str | None = None
) -> tuple[str, list[Buffer]]:
    unpack = "tar -x -f - -p --no-same-owner"
    script = (
        f"cd / || exit 1\nfor p in {' '.join(names)}; do "
        f'[ -d "$p" ] && [ ! -h "$p" ] || exit {EXIT_NOT_DIRECTORIES}; done\n'
        + (f"exec {unpack}" if then is None else f"{unpack} || exit\nexec {then}")
    )
    return script, tarformat.archive((member,) for member in members)


def read_command(paths: Sequence[str]) -> str:
    """``tar c`` of ``paths`` (links followed, directories not descended) to stdout."""
    names = " ".join(quote(relative(path)) for path in paths)
    return f"cd / && tar -c -f - -h --no-recursion -- {names}"


def read_archive(
    location: ExecutionLocation, paths: Sequence[str], result: Completed
) -> list[bytes | ConnectorError]:
    """Each requested file's bytes from the archive, or its error (blocking: run it in a
    thread)."""
    wanted = {relative(path): index for index, path in enumerate(paths)}
    found: dict[int, bytes | ConnectorError] = {}
    try:
        for member in tarformat.unpack(result.stdout):
            index = wanted.get(member.name)
            if index is None or index in found:
                raise tarformat.ArchiveError(f"unexpected member {member.name!r}")
            if member.kind == b"5":
                found[index] = PathExistsError(location, paths[index], "is a directory")
            elif member.kind == b"0":
                found[index] = member.data
            else:
                raise tarformat.ArchiveError(f"{member.name!r} is not a regular file")
    except tarformat.ArchiveError as exc:
        if result.stdout:  # an empty archive only means every file failed
            error = ConnectorError(location, paths[0], f"refused the packed stream: {exc}")
            return [error] * len(paths)
    return [
        _changed(location, path, result.stderr, found[index])
        if index in found
        else _member_error(location, path, path, result.stderr)
        for index, path in enumerate(paths)
    ]


_CHANGED = ("file changed as we read it", "File shrank by", "file removed before we read it")
"""What GNU tar says of a file that changed while it read it (it pads a file that shrank
with zeros: the member has its planned size but not its bytes)."""


def _changed(
    location: ExecutionLocation, path: str, stderr: str, content: bytes | ConnectorError
) -> bytes | ConnectorError:
    """``content``, unless tar said that the file changed while it read it."""
    for line in _naming(stderr, [relative(path)]):
        if any(words in line for words in _CHANGED):
            return SourceChangedError(location, path, line.rsplit(": ", 1)[-1])
    return content


def hashed_files(
    location: ExecutionLocation, paths: Sequence[str], result: Completed
) -> list[str | ConnectorError]:
    """Each path's SHA-256 from ``sha256sum -z``'s records (``HEX  NAME``, NUL-ended, names
    unescaped), or the error ``sha256sum`` reported for it."""
    digests: dict[str, str] = {}
    for record in result.stdout.split(b"\0"):
        field, _, name = record.partition(b"  ")
        if (digest := sha256_hex(field)) is not None and name:
            digests[os.fsdecode(name)] = digest
    return [
        digests[path]
        if path in digests
        else _named_error(location, path, [path], result.stderr, "sha256sum", "no digest")
        for path in paths
    ]
