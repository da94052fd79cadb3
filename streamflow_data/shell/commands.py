"""Talking to a shell on a host: quoting, exit codes, and our errors for its failures.

Every command runs under ``/bin/sh`` on the host with ``LC_ALL=C`` (:func:`in_c_locale`),
so messages are the C library's ``strerror`` texts and map to the same error types as the
local connector's ``errno`` values. Checks the scripts make themselves exit with the codes
below.
"""

from __future__ import annotations

import itertools
import os
import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass

from streamflow_data.errors import (
    ChecksumMismatchError,
    ConnectorError,
    InvalidPathError,
    NotDirectoryError,
    PathExistsError,
    PathNotFoundError,
    PermissionDeniedError,
    StorageFullError,
    errno_codes,
    error_type,
)
from streamflow_data.location import ExecutionLocation

__all__ = [
    "EXIT_DENIED",
    "EXIT_EXISTS",
    "EXIT_MISMATCH",
    "EXIT_NOT_DIRECTORY",
    "EXIT_NOT_FOUND",
    "Buffer",
    "Completed",
    "command_error",
    "decimal_seconds",
    "in_c_locale",
    "metadata_commands",
    "metadata_script",
    "path_list",
    "quote",
    "relative",
    "sha256_hex",
    "status_pipeline",
    "wire",
]

Buffer = bytes | memoryview
"""Bytes given to a process, without a copy."""

EXIT_NOT_FOUND = 64
EXIT_EXISTS = 65
EXIT_NOT_DIRECTORY = 66
EXIT_DENIED = 67
EXIT_MISMATCH = 68

_EXIT_TYPES: dict[int, tuple[type[ConnectorError], str]] = {
    EXIT_NOT_FOUND: (PathNotFoundError, ""),
    EXIT_EXISTS: (PathExistsError, ""),
    EXIT_NOT_DIRECTORY: (NotDirectoryError, ""),
    EXIT_DENIED: (PermissionDeniedError, ""),
    EXIT_MISMATCH: (ChecksumMismatchError, "the bytes hashed on the host differ from those sent"),
}
_MESSAGES = [(os.strerror(code), error_type(code)) for code in errno_codes()]
_MESSAGES.append(("Wrote only", StorageFullError))  # GNU tar's short write: the disk filled


def _without_nul(word: str) -> str:
    """``word``; :class:`InvalidPathError` if it holds a NUL byte, which no shell word or
    ``-0`` list item can hold (and on which sshd drops the whole connection)."""
    if "\0" in word:
        raise InvalidPathError(f"a NUL byte cannot be sent to a remote shell: {word!r}")
    return word


def quote(word: str) -> str:
    """``word`` quoted for the remote shell (no NUL byte: see :func:`_without_nul`)."""
    return shlex.quote(_without_nul(word))


def relative(path: str) -> str:
    """An absolute path as a name relative to ``/`` (for ``tar -C /``)."""
    return path.lstrip("/") or "."


def in_c_locale(command: str) -> str:
    """``command`` run with ``LC_ALL=C``, as a transport runs every command: the C
    library's messages, whatever the host's language."""
    return f"LC_ALL=C; export LC_ALL; {command}"


def wire(command: str) -> bytes:
    """``command`` as the host's shell must receive it: UTF-8, with the bytes of names
    that are not UTF-8 restored from their surrogate escapes (as :func:`os.fsencode` does,
    and as a program's arguments are), so that such names reach the host intact."""
    return command.encode("utf-8", "surrogateescape")


def decimal_seconds(mtime_ns: int) -> str:
    """Nanoseconds since the epoch as exact decimal seconds (``touch -d @``, PAX)."""
    seconds, nanoseconds = divmod(abs(mtime_ns), 1_000_000_000)
    return f"{'-' if mtime_ns < 0 else ''}{seconds}.{nanoseconds:09d}"


def metadata_commands(path: str, mode: int | None, mtime_ns: int | None) -> list[str]:
    """Shell commands giving ``path`` a mode and a modification time (nanoseconds)."""
    commands = []
    if mode is not None:
        commands.append(_chmod(mode, [path]))
    if mtime_ns is not None:
        commands.append(_touch(mtime_ns, [path]))
    return commands


_TOUCH_JOBS = 8
"""``touch`` processes run at once: a tree's directories usually each have a time of their
own, and one process after the other cost about 0.6 ms each (60 ms for 100)."""


def metadata_script(items: Sequence[tuple[str, int | None, int | None]]) -> str:
    """A script (for ``sh -s``: it may exceed the 128 KiB of one command line) giving each
    (path, mode, mtime_ns) its time and mode, with a process per distinct time and per run
    of equal modes rather than two per path.

    Times are set first, while every directory can still be searched, by up to
    ``_TOUCH_JOBS`` processes at once (the script fails after all have run if one did);
    modes follow in the order given (deepest first), so a parent loses its permissions
    after its children.
    """
    times: dict[int, list[str]] = {}
    for path, _, mtime_ns in items:
        if mtime_ns is not None:
            times.setdefault(mtime_ns, []).append(path)
    touches = [_touch(when, chunk) for when, paths in times.items() for chunk in _chunks(paths)]
    lines = ["set -e"]
    for start in range(0, len(touches), _TOUCH_JOBS):
        lines += [f'{touch} & jobs="$jobs $!"' for touch in touches[start : start + _TOUCH_JOBS]]
        lines.append('for job in $jobs; do wait "$job" || failed=1; done; jobs=')
    if touches:
        lines.append('[ -z "$failed" ]')
    modes = [(path, mode) for path, mode, _ in items if mode is not None]
    for mode, run in itertools.groupby(modes, key=lambda item: item[1]):
        lines += [_chmod(mode, chunk) for chunk in _chunks([path for path, _ in run])]
    return "\n".join(lines) + "\n"


def _chmod(mode: int, paths: Sequence[str]) -> str:
    return f"chmod {mode & 0o7777:o} -- {' '.join(quote(path) for path in paths)}"


def _touch(mtime_ns: int, paths: Sequence[str]) -> str:
    return f"touch -h -d @{decimal_seconds(mtime_ns)} -- {' '.join(quote(path) for path in paths)}"


def _chunks(paths: Sequence[str], size: int = 256) -> list[Sequence[str]]:
    """``paths`` in runs of at most ``size``: one command line each."""
    return [paths[start : start + size] for start in range(0, len(paths), size)]


def status_pipeline(command: str, label: str, hash_command: str | None) -> str:
    """Run ``command`` on standard input and print ``LABEL=STATUS``; with a hash command,
    also print the hash of the bytes ``command`` read (``tee`` hands them over; the status
    comes out on fd 4 so that it does not enter the hash)."""
    if hash_command is None:
        return f'{command}; echo "{label}=$?"'
    reading = f'{{ tee /dev/fd/3 | {command}; echo "{label}=$?" >&4; }} 3>&1'
    return f"{{ {reading} | {hash_command} >&4; }} 4>&1"


@dataclass(frozen=True, slots=True)
class Completed:
    """What a command returned."""

    status: int
    stdout: bytes
    stderr: str


def command_error(
    result: Completed, location: ExecutionLocation, path: str, what: str = ""
) -> ConnectorError:
    """Our error for a failed command: by its exit code, else by its message."""
    detail = _first_line(result.stderr) or f"{what or 'remote command'} exited {result.status}"
    kind, fixed = _EXIT_TYPES.get(result.status, (None, ""))
    if kind is not None:
        return kind(location, path, fixed or None)
    for message, message_kind in _MESSAGES:
        if message in result.stderr:
            return message_kind(location, path, detail)
    if result.status == 127:
        detail = f"a tool is missing on the host: {detail}"
    return ConnectorError(location, path, detail)


def _first_line(stderr: str) -> str:
    """What a command said first (the cause: the rest is usually its consequences, a
    ``mkdir -p`` failing for each directory below the first), and how much more."""
    lines = [line for line in dict.fromkeys(stderr.strip().splitlines()) if line.strip()]
    if not lines:
        return ""
    more = f" (and {len(lines) - 1} more line(s))" if len(lines) > 1 else ""
    return lines[0][:800] + more


def path_list(paths: Sequence[str]) -> bytes:
    """Paths as a NUL-separated list (for ``xargs -0``)."""
    return b"".join(os.fsencode(_without_nul(path)) + b"\0" for path in paths)


_SHA256_HEX = re.compile(rb"[0-9a-fA-F]{64}")


def sha256_hex(field: bytes) -> str | None:
    """The SHA-256 digest ``field`` holds, in lower-case hex as ``sha256sum`` prints it, or
    None when it holds none: what a host prints is checked, not trusted."""
    return field.decode("ascii").lower() if _SHA256_HEX.fullmatch(field) else None
