"""botocore's and aiohttp's exceptions, translated into streamflow-data's at the boundary."""

from __future__ import annotations

import aiohttp
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    PartialCredentialsError,
    ReadTimeoutError,
)

from streamflow_data.sdk import (
    AuthenticationError,
    ChecksumMismatchError,
    ConnectorError,
    ExecutionLocation,
    LocationUnreachableError,
    PathNotFoundError,
    PermissionDeniedError,
    SourceChangedError,
    StorageFullError,
)

__all__ = ["error_code", "translate"]

_NOT_FOUND = {"NoSuchKey", "404", "NotFound", "NoSuchUpload"}
_DENIED = {"AccessDenied", "403", "AllAccessDisabled", "AccountProblem"}
_CREDENTIALS = {
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "InvalidToken",
    "TokenRefreshRequired",
}
_DIGEST = {"BadDigest", "InvalidDigest", "XAmzContentSHA256Mismatch", "InvalidChecksum"}
_PASSING = {"SlowDown", "InternalError", "ServiceUnavailable", "RequestTimeout", "Throttling"}
_UNREACHABLE = (
    EndpointConnectionError,
    ConnectTimeoutError,
    ReadTimeoutError,
    ConnectionClosedError,
    aiohttp.ClientConnectionError,
    TimeoutError,
)


def error_code(error: ClientError) -> str:
    """The S3 error code of a failed request (``NoSuchKey``, ``404``, ...)."""
    return str(error.response.get("Error", {}).get("Code", ""))


def translate(error: Exception, location: ExecutionLocation, path: str) -> ConnectorError:
    """Our error for a failure of a request on ``path`` in the bucket ``location``."""
    if isinstance(error, ConnectorError):
        return error
    if isinstance(error, ClientError):
        code = error_code(error)
        message = str(error.response.get("Error", {}).get("Message", "")) or code
        if code == "NoSuchBucket":
            return PathNotFoundError(location, path, f"no such bucket {location.name!r}")
        if code in _NOT_FOUND:
            return PathNotFoundError(location, path)
        if code in _DENIED:
            return PermissionDeniedError(location, path, message)
        if code in _CREDENTIALS:
            return AuthenticationError(location, path, f"{code}: {message}")
        if code in _DIGEST:
            return ChecksumMismatchError(location, path, f"{code}: {message}")
        if code in ("QuotaExceeded", "EntityTooLarge"):
            return StorageFullError(location, path, f"{code}: {message}")
        if code in ("PreconditionFailed", "412"):  # a read pinned to an ETag (If-Match)
            return SourceChangedError(location, path, "another object replaced it")
        status = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        failure = ConnectorError(location, path, f"{code}: {message}")
        failure.retryable = code in _PASSING or status >= 500
        return failure
    if isinstance(error, _UNREACHABLE):
        return LocationUnreachableError(location, path, str(error))
    if isinstance(error, NoCredentialsError | PartialCredentialsError):
        return AuthenticationError(location, path, str(error))
    if isinstance(error, BotoCoreError | aiohttp.ClientError):
        return ConnectorError(location, path, f"{type(error).__name__}: {error}")
    raise error
