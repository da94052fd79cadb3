"""The exceptions streamflow-data raises.

Every error the library raises on purpose derives from :class:`StreamFlowDataError`, so an
embedding workflow manager can catch the whole family at once. Connectors translate their
backend's exceptions (``OSError``, asyncssh, botocore) into these types at the connector
boundary: callers never see a backend exception type::

    StreamFlowDataError
    ├── ConfigurationError          bad settings or connector options      (also ValueError)
    ├── InvalidPathError            a path the data manager cannot accept  (also ValueError)
    ├── UnknownPathError            no valid replica of a path where asked (also LookupError)
    ├── UnknownDeploymentError      no connector serves a deployment       (also LookupError)
    ├── UnknownLocationError        a deployment has no such location      (also LookupError)
    ├── UnknownTransferError        the journal has no transfer of that id (also LookupError)
    ├── ConnectorError              a storage operation failed (retryable)
    │   ├── ChecksumMismatchError   written bytes differ from the source (retryable)
    │   ├── PathNotFoundError       the path does not exist on the location
    │   ├── PathExistsError         the path exists and may not be replaced
    │   ├── NotDirectoryError       a directory was expected
    │   ├── NameTooLongError        a name or path is longer than the storage allows
    │   ├── PermissionDeniedError   the storage refused access
    │   ├── StorageFullError        no space or quota left on the location
    │   ├── UnsupportedOperationError  the connector lacks the capability
    │   ├── UnsafePathError         a listed name would write outside the destination
    │   ├── SourceChangedError      the source file changed while it was copied
    │   │                              (retryable)
    │   ├── LocationUnreachableError   the location cannot be reached, or the
    │   │                              connection dropped (retryable)
    │   └── AuthenticationError     the location refused our credentials, or
    │                                  its identity could not be verified
    ├── ConnectorNotFoundError      no installed plugin provides a connector type
    ├── CatalogError                the catalog file is unusable: corrupt, locked,
    │                                  newer than this version, unwritable
    ├── TransferLockedError         another process is writing the destination path
    ├── CacheFullError              the local cache budget is taken by pinned replicas
    ├── TransferCancelledError      the manager's shutdown event stopped a transfer
    └── TransferError               one or more destinations of a transfer failed

A :class:`TransferError` carries one :class:`TransferFailure` per failed (file, destination)
pair, each with the underlying cause, so a single exception reports a whole transfer.
``ConnectorError.retryable`` says whether trying the same operation again may succeed: the
transfer engine retries only those (a generic I/O error, a dropped connection, a checksum
mismatch), never a missing path or a full disk.
"""

from __future__ import annotations

import errno
from collections.abc import Sequence
from dataclasses import dataclass

from streamflow_data.location import ExecutionLocation

__all__ = [
    "AmbiguousLocationError",
    "AuthenticationError",
    "CacheFullError",
    "CatalogError",
    "ChecksumMismatchError",
    "ConfigurationError",
    "ConnectorError",
    "ConnectorNotFoundError",
    "InvalidPathError",
    "LocationUnreachableError",
    "NameTooLongError",
    "NotDirectoryError",
    "PathExistsError",
    "PathNotFoundError",
    "PermissionDeniedError",
    "SourceChangedError",
    "StorageFullError",
    "StreamFlowDataError",
    "TransferCancelledError",
    "TransferError",
    "TransferFailure",
    "TransferLockedError",
    "UnknownDeploymentError",
    "UnknownLocationError",
    "UnknownPathError",
    "UnknownTransferError",
    "UnsafePathError",
    "UnsupportedOperationError",
    "errno_codes",
    "error_type",
]


def describe(location: ExecutionLocation) -> str:
    """The ``deployment/name`` label used in every message that names a location."""
    return f"{location.deployment}/{location.name}"


class StreamFlowDataError(Exception):
    """Base class of every error raised by streamflow-data."""


class ConfigurationError(StreamFlowDataError, ValueError):
    """Settings or connector options are invalid; the message says which key and why."""


class InvalidPathError(StreamFlowDataError, ValueError):
    """A path is not absolute or otherwise cannot name data on a location."""


class UnknownPathError(StreamFlowDataError, LookupError):
    """No valid replica of ``path`` is known on ``location`` (or anywhere, if it is None)."""

    def __init__(self, path: str, location: ExecutionLocation | None = None) -> None:
        where = f"on {describe(location)}" if location is not None else "on any location"
        super().__init__(f"no valid replica of {path!r} is registered {where}")
        self.path = path
        self.location = location


class UnknownDeploymentError(StreamFlowDataError, LookupError):
    """No connector is configured for the deployment."""

    def __init__(self, deployment: str, known: Sequence[str] = ()) -> None:
        hint = f" (known: {', '.join(sorted(known))})" if known else ""
        super().__init__(f"no connector is configured for deployment {deployment!r}{hint}")
        self.deployment = deployment


class UnknownLocationError(StreamFlowDataError, LookupError):
    """The deployment's connector does not serve a location of that name."""

    def __init__(self, location: ExecutionLocation, known: Sequence[str] = ()) -> None:
        hint = f" (its locations: {', '.join(sorted(known))})" if known else ""
        super().__init__(
            f"deployment {location.deployment!r} has no location {location.name!r}{hint}"
        )
        self.location = location


class AmbiguousLocationError(ConfigurationError):
    """A deployment of several locations was named without saying which one."""

    def __init__(self, deployment: str, names: Sequence[str]) -> None:
        super().__init__(
            f"deployment {deployment!r} has {len(names)} locations: name one of {', '.join(names)}"
        )
        self.deployment = deployment
        self.names = list(names)


class UnknownTransferError(StreamFlowDataError, LookupError):
    """The catalog's journal holds no transfer with that identifier."""

    def __init__(self, transfer: int) -> None:
        super().__init__(f"the journal has no transfer {transfer}")
        self.transfer = transfer


class ConnectorNotFoundError(StreamFlowDataError, LookupError):
    """No installed connector plugin registers the requested connector type."""

    def __init__(self, kind: str, available: Sequence[str]) -> None:
        super().__init__(
            f"no connector plugin provides type {kind!r}; installed types: "
            f"{', '.join(sorted(available)) or 'none'}"
        )
        self.kind = kind


class ConnectorError(StreamFlowDataError):
    """A storage operation on a location failed.

    ``location`` and ``path`` name where it failed; the original backend exception, when
    there is one, is chained as ``__cause__``.
    """

    reason = "storage operation failed"
    retryable = True
    """Whether the same operation may succeed if tried again."""

    def __init__(self, location: ExecutionLocation, path: str, detail: str | None = None) -> None:
        where = f"{path!r} on {describe(location)}" if path else describe(location)
        message = f"{self.reason}: {where}"
        if detail:
            message = f"{message}: {detail}"
        super().__init__(message)
        self.location = location
        self.path = path


class ChecksumMismatchError(ConnectorError):
    """The bytes stored at the destination are not the bytes read from the source."""

    reason = "checksum mismatch"


class PathNotFoundError(ConnectorError):
    """The path does not exist on the location."""

    reason = "no such file or directory"
    retryable = False


class PathExistsError(ConnectorError):
    """The path already exists and the operation may not replace it."""

    reason = "path already exists"
    retryable = False


class NotDirectoryError(ConnectorError):
    """A path component or the target is not a directory."""

    reason = "not a directory"
    retryable = False


class NameTooLongError(ConnectorError):
    """A name, or the whole path, is longer than the storage allows (``ENAMETOOLONG``):
    trying again cannot help, a shorter name can."""

    reason = "file name too long"
    retryable = False


class PermissionDeniedError(ConnectorError):
    """The storage refused the operation for lack of permission."""

    reason = "permission denied"
    retryable = False


class StorageFullError(ConnectorError):
    """The location has no space or quota left."""

    reason = "no space left"
    retryable = False


class UnsupportedOperationError(ConnectorError):
    """The connector does not offer this operation (see its capabilities)."""

    reason = "operation not supported"
    retryable = False


class UnsafePathError(ConnectorError):
    """A copy would write outside its destination: a location listed a name that is not a
    plain relative path (absolute, empty, with ``.``, ``..`` or empty components, or a NUL
    byte), or a symbolic link already in the destination tree stands where a directory
    goes. Not retryable: the listing or the tree must change (docs/security.md)."""

    reason = "unsafe path"
    retryable = False


class SourceChangedError(ConnectorError):
    """The source file was written to, resized, removed or replaced while it was read, so
    a copy would match neither version: nothing of it is published. Retryable: the next
    attempt reads the file again."""

    reason = "the file changed during the transfer"


class LocationUnreachableError(ConnectorError):
    """The location could not be reached (refused, timed out), or the connection to it
    dropped during the operation. Retryable: the host may come back."""

    reason = "location unreachable"


class AuthenticationError(ConnectorError):
    """The location refused our credentials, or its identity (a host key) could not be
    verified. Not retryable: the configuration must change."""

    reason = "authentication failed"
    retryable = False


class CatalogError(StreamFlowDataError):
    """The catalog database cannot be used: it is not a SQLite file or is corrupt, another
    process holds it locked longer than the configured wait, it was written by a newer
    version, it cannot be written, or its server cannot be reached. ``path`` names the
    file, or the server's URL without its password; ``transient`` says the same request
    may succeed later (a connection lost, a server restarting)."""

    def __init__(self, path: str, detail: str, *, transient: bool = False) -> None:
        super().__init__(f"catalog {path!r}: {detail}")
        self.path = path
        self.transient = transient


class TransferLockedError(StreamFlowDataError):
    """Another data manager sharing the catalog is writing the destination path (or a path
    inside it, or a directory containing it), and the lock policy says not to wait."""

    def __init__(self, location: ExecutionLocation, path: str, holder: str) -> None:
        super().__init__(f"{describe(location)}:{path} is being written by {holder}")
        self.location = location
        self.path = path
        self.holder = holder


class CacheFullError(StreamFlowDataError):
    """A copy to the local node does not fit in the cache budget, and the replicas that
    would have to be evicted are pinned or in use."""


class TransferCancelledError(StreamFlowDataError):
    """A transfer stopped because the data manager's shutdown event was set."""


@dataclass(frozen=True, slots=True)
class TransferFailure:
    """One destination of a transfer that failed, and why."""

    path: str
    """The destination path that was not written."""
    location: ExecutionLocation
    """The destination location."""
    cause: BaseException
    """The exception that made it fail."""

    def __str__(self) -> str:
        return f"{describe(self.location)}:{self.path}: {self.cause}"


class TransferError(StreamFlowDataError):
    """A transfer failed for at least one destination.

    Destinations that succeeded are registered as replicas; every failed one is listed in
    ``failures`` and left with nothing at its destination path.
    """

    def __init__(self, source: str, failures: Sequence[TransferFailure]) -> None:
        lines = "\n".join(f"  - {failure}" for failure in failures)
        super().__init__(
            f"transfer of {source!r} failed for {len(failures)} destination(s):\n{lines}"
        )
        self.source = source
        self.failures = tuple(failures)


_ERRNO_TYPES: dict[int, type[ConnectorError]] = {
    errno.ENOENT: PathNotFoundError,
    errno.EEXIST: PathExistsError,
    errno.ENOTEMPTY: PathExistsError,
    errno.EISDIR: PathExistsError,
    errno.ENOTDIR: NotDirectoryError,
    errno.ENAMETOOLONG: NameTooLongError,
    errno.EACCES: PermissionDeniedError,
    errno.EPERM: PermissionDeniedError,
    errno.EROFS: PermissionDeniedError,
    errno.ENOSPC: StorageFullError,
    errno.EDQUOT: StorageFullError,
}


def error_type(code: int) -> type[ConnectorError]:
    """The :class:`ConnectorError` subclass for a POSIX ``errno`` value.

    Connectors of POSIX storage (local, SSH) translate failures with it, so that the same
    condition raises the same type whatever the connector.
    """
    return _ERRNO_TYPES.get(code, ConnectorError)


def errno_codes() -> Sequence[int]:
    """The ``errno`` values :func:`error_type` gives a specific type."""
    return tuple(_ERRNO_TYPES)
