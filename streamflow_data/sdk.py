"""What a connector plugin needs from the core, in one public module.

The connector contract (the classes a plugin subclasses and the items of its bulk
operations), the errors it raises, and the helpers the shipped plugins use: the names of
partial files, CRC32C, option parsing, a cache of ``stat``/``walk`` answers and blocking
calls in worker threads. A plugin imports from here and from :mod:`streamflow_data` only
(a test checks the shipped ones): every other module of the package may change without
notice. The conformance suite a plugin runs is :mod:`streamflow_data.testing`.
"""

from __future__ import annotations

from streamflow_data.checksum import (
    crc32c,
    crc32c_async,
    crc32c_base64,
    crc32c_combine,
    crc32c_of_pieces,
    inline,
)
from streamflow_data.config import backoff
from streamflow_data.connectors.base import (
    Capabilities,
    Connector,
    CopyEvents,
    CopyItem,
    FileKind,
    FileStat,
    LinkItem,
    LocalFile,
    MetadataItem,
    WalkEntry,
    WriteItem,
    each_item,
)
from streamflow_data.connectors.localcopy import SourceChecksums
from streamflow_data.connectors.metadata import MetadataCache
from streamflow_data.connectors.openfiles import Reader, Writer
from streamflow_data.errors import (
    AuthenticationError,
    ChecksumMismatchError,
    ConfigurationError,
    ConnectorError,
    InvalidPathError,
    LocationUnreachableError,
    NameTooLongError,
    NotDirectoryError,
    PathExistsError,
    PathNotFoundError,
    PermissionDeniedError,
    SourceChangedError,
    StorageFullError,
    UnknownLocationError,
    UnsafePathError,
    UnsupportedOperationError,
    errno_codes,
    error_type,
)
from streamflow_data.model import (
    Digest,
    ExecutionLocation,
    Verification,
    check_partial_file,
    is_temporary_of,
    relpath_fault,
    temporary_name,
    temporary_prefix,
)
from streamflow_data.threads import settled
from streamflow_data.validation import parse_options

__all__ = [
    "AuthenticationError",
    "Capabilities",
    "ChecksumMismatchError",
    "ConfigurationError",
    "Connector",
    "ConnectorError",
    "CopyEvents",
    "CopyItem",
    "Digest",
    "ExecutionLocation",
    "FileKind",
    "FileStat",
    "InvalidPathError",
    "LinkItem",
    "LocalFile",
    "LocationUnreachableError",
    "MetadataCache",
    "MetadataItem",
    "NameTooLongError",
    "NotDirectoryError",
    "PathExistsError",
    "PathNotFoundError",
    "PermissionDeniedError",
    "Reader",
    "SourceChangedError",
    "SourceChecksums",
    "StorageFullError",
    "UnknownLocationError",
    "UnsafePathError",
    "UnsupportedOperationError",
    "Verification",
    "WalkEntry",
    "WriteItem",
    "Writer",
    "backoff",
    "check_partial_file",
    "crc32c",
    "crc32c_async",
    "crc32c_base64",
    "crc32c_combine",
    "crc32c_of_pieces",
    "each_item",
    "errno_codes",
    "error_type",
    "inline",
    "is_temporary_of",
    "parse_options",
    "relpath_fault",
    "settled",
    "temporary_name",
    "temporary_prefix",
]
