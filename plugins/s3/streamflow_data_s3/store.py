"""Requests to one S3 endpoint: its client, each bucket's request limit, the object and
multipart-upload operations, and the cache of ``stat`` answers they change.

The connector, its readers and writers (:mod:`streamflow_data_s3.streams`) and its large
copies (:mod:`streamflow_data_s3.large_copies`) all go through an :class:`S3Store`; it
depends on none of them.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import time
from collections.abc import Callable
from typing import Any

from aiobotocore.config import AioConfig
from botocore.exceptions import ClientError

from streamflow_data.sdk import (
    ChecksumMismatchError,
    ConnectorError,
    ExecutionLocation,
    LocationUnreachableError,
    MetadataCache,
    PathNotFoundError,
    crc32c,
    crc32c_base64,
    inline,
    is_temporary_of,
    temporary_prefix,
)
from streamflow_data_s3.client import prepared_session
from streamflow_data_s3.failures import error_code, translate
from streamflow_data_s3.options import S3Options
from streamflow_data_s3.parts import PartBody

__all__ = ["S3Store", "key_of"]


def key_of(path: str) -> str:
    """The object key of ``path``: the path without its leading ``/``."""
    return path.lstrip("/")


def _hashes(body: bytes | bytearray, md5: bool) -> tuple[dict[str, str], str | None]:
    headers = {"ChecksumCRC32C": crc32c_base64(crc32c(body))}
    if not md5:
        return headers, None
    digest = hashlib.md5(body, usedforsecurity=False)
    headers["ContentMD5"] = base64.b64encode(digest.digest()).decode()
    return headers, digest.hexdigest()


async def body_headers(body: bytes | bytearray, md5: bool) -> tuple[dict[str, str], str | None]:
    """Request parameters that make S3 check ``body``: its CRC32C, and its MD5 when
    ``md5``; then also the ETag S3 must answer."""
    if inline(len(body)):  # small: hashing costs less than a thread hop
        return _hashes(body, md5)
    return await asyncio.to_thread(_hashes, body, md5)


def check_etag(
    location: ExecutionLocation, path: str, answer: dict[str, Any], etag: str | None
) -> None:
    """Raise if the ETag S3 answered is not the MD5 ``etag`` of what was sent."""
    got = str(answer.get("ETag", "")).strip('"')
    if etag is not None and got and got != etag:
        raise ChecksumMismatchError(location, path, f"S3 stored ETag {got}, sent MD5 {etag}")


def _send_at_once(request: Any, **_: object) -> None:
    """Send a PUT's body with its headers. botocore asks for ``Expect: 100-continue`` on
    every PutObject, and aiohttp then waits for the server's interim answer before sending
    the body: a round trip more per object, for bodies below the multipart threshold."""
    request.headers.pop("Expect", None)


_UNREACHABLE_FOR = 10.0
"""Seconds after a request found the endpoint unreachable through all its retries during
which requests are tried once: every operation of a transfer, and the engine's retries of
each, would otherwise wait out the same back-off for the same answer."""


class S3Store:
    """The requests of one S3 endpoint (see the module docstring)."""

    def __init__(self, options: S3Options) -> None:
        self.options = options
        """The validated options of the connector."""
        self.metadata = MetadataCache(options.metadata_ttl)
        """The ``stat`` and ``walk`` answers kept; the writes here forget what they change."""
        self._client: Any = None
        self._once: Any = None  # the same, trying each request once (see _s3)
        self._unreachable_until = 0.0
        self._lister: Any = None  # the ListObjectsV2 paginator
        self._stack = contextlib.AsyncExitStack()
        self._opening = asyncio.Lock()
        self._slots: dict[str, asyncio.Semaphore] = {}

    # -- requests --------------------------------------------------------------------------

    async def _s3(self) -> Any:
        """The aiobotocore client, created on first use (its set-up reads files: a thread);
        for a while after the endpoint was unreachable through all of its retries, a client
        that tries each request once (see :data:`_UNREACHABLE_FOR`)."""
        async with self._opening:
            if self._client is None:
                self._client = await self._create_client(self.options.retries + 1)
                # Its model file is read on first use: in a thread, once.
                self._lister = await asyncio.to_thread(
                    self._client.get_paginator, "list_objects_v2"
                )
            if time.monotonic() >= self._unreachable_until:
                return self._client
            if self._once is None:
                self._once = await self._create_client(1)
            return self._once

    async def _create_client(self, attempts: int) -> Any:
        options = self.options
        session = await asyncio.to_thread(prepared_session, options)
        config = AioConfig(
            retries={"total_max_attempts": attempts, "mode": "standard"},
            s3={"addressing_style": options.addressing_style},
            connect_timeout=options.connect_timeout,
            read_timeout=options.read_timeout,
            max_pool_connections=options.max_concurrency * len(options.buckets) + 4,
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
        secret = options.secret_access_key
        token = options.session_token
        client = await self._stack.enter_async_context(
            session.create_client(
                "s3",
                region_name=options.region,
                endpoint_url=options.endpoint_url,
                aws_access_key_id=options.access_key_id,
                aws_secret_access_key=None if secret is None else secret.get_secret_value(),
                aws_session_token=None if token is None else token.get_secret_value(),
                config=config,
            )
        )
        client.meta.events.register("before-send.s3.PutObject", _send_at_once)
        return client

    def _answered(self, client: Any, error: ConnectorError | None) -> None:
        """Note how a request of ``client`` ended: the endpoint unreachable through all
        the retries of the main client starts a while of single attempts, which any
        answer ends."""
        if error is None:
            if client is self._once:
                self._unreachable_until = 0.0
        elif isinstance(error, LocationUnreachableError) and client is self._client:
            self._unreachable_until = time.monotonic() + _UNREACHABLE_FOR

    async def _call(
        self, client: Any, location: ExecutionLocation, path: str, operation: str, arguments: Any
    ) -> Any:
        try:
            answer = await getattr(client, operation)(Bucket=location.name, **arguments)
        except Exception as exc:
            error = translate(exc, location, path)
            self._answered(client, error)
            raise error from exc
        self._answered(client, None)
        return answer

    def _slot(self, location: ExecutionLocation) -> asyncio.Semaphore:
        slot = self._slots.get(location.name)
        if slot is None:
            slot = self._slots[location.name] = asyncio.Semaphore(self.options.max_concurrency)
        return slot

    async def request_slot(self, location: ExecutionLocation) -> Callable[[], None]:
        """Wait for a free request slot of the bucket; call the result to give it back."""
        slot = self._slot(location)
        await slot.acquire()
        return slot.release

    async def request(
        self, location: ExecutionLocation, path: str, operation: str, **arguments: Any
    ) -> Any:
        """One request on the bucket, within its concurrency limit, errors translated."""
        client = await self._s3()
        async with self._slot(location):
            return await self._call(client, location, path, operation, arguments)

    async def _unlimited(
        self, location: ExecutionLocation, path: str, operation: str, **arguments: Any
    ) -> Any:
        """A request made while holding a slot already (a writer's part)."""
        return await self._call(await self._s3(), location, path, operation, arguments)

    async def head(self, location: ExecutionLocation, key: str, path: str) -> Any | None:
        """The object's HEAD answer, or None when there is no such key."""
        try:
            return await self.request(location, path, "head_object", Key=key)
        except PathNotFoundError:
            return None

    async def open_range(
        self, location: ExecutionLocation, path: str, offset: int, etag: str | None = None
    ) -> Any:
        """The GET answer of the object from ``offset`` to its end (None past it); with
        ``etag``, only of that version of the object (a retryable error for another)."""
        pinned = {} if etag is None else {"IfMatch": etag}
        try:
            return await self.request(
                location, path, "get_object", Key=key_of(path), Range=f"bytes={offset}-", **pinned
            )
        except ConnectorError as exc:
            cause = exc.__cause__
            if isinstance(cause, ClientError) and error_code(cause) == "InvalidRange":
                return None
            raise

    async def etag(self, location: ExecutionLocation, path: str) -> str | None:
        """The ETag of the object at ``path`` now (a HEAD, no kept answer), or None."""
        answer = await self.head(location, key_of(path), path)
        return None if answer is None else str(answer["ETag"])

    async def put(
        self, location: ExecutionLocation, path: str, body: bytes, metadata: dict[str, str]
    ) -> None:
        """One PUT of a whole object, checked by its CRC32C (and MD5: ``content_md5``)."""
        headers, etag = await body_headers(body, self.options.content_md5)
        try:
            answer = await self.request(
                location,
                path,
                "put_object",
                Key=key_of(path),
                Body=body,
                Metadata=metadata,
                **headers,
            )
            check_etag(location, path, answer, etag)
        finally:
            self.metadata.changed(location, [path], parents=False)

    async def start_upload(
        self, location: ExecutionLocation, path: str, metadata: dict[str, str]
    ) -> str:
        """Start a multipart upload; returns its id."""
        answer = await self.request(
            location,
            path,
            "create_multipart_upload",
            Key=key_of(path),
            Metadata=metadata,
            ChecksumAlgorithm="CRC32C",
        )
        return str(answer["UploadId"])

    async def upload_part(
        self,
        location: ExecutionLocation,
        path: str,
        upload_id: str,
        number: int,
        body: bytes | bytearray,
    ) -> dict[str, Any]:
        """Send one part (the caller holds a request slot); returns its completion entry."""
        headers, etag = await body_headers(body, self.options.content_md5)
        answer = await self._unlimited(
            location,
            path,
            "upload_part",
            Key=key_of(path),
            UploadId=upload_id,
            PartNumber=number,
            Body=PartBody(body),
            **headers,
        )
        check_etag(location, path, answer, etag)
        return {
            "PartNumber": number,
            "ETag": answer["ETag"],
            "ChecksumCRC32C": headers["ChecksumCRC32C"],
        }

    async def complete_upload(
        self, location: ExecutionLocation, path: str, upload_id: str, parts: list[dict[str, Any]]
    ) -> None:
        try:
            await self.request(
                location,
                path,
                "complete_multipart_upload",
                Key=key_of(path),
                UploadId=upload_id,
                MultipartUpload={"Parts": parts},
            )
        finally:
            self.metadata.changed(location, [path], parents=False)

    async def list_parts(
        self, location: ExecutionLocation, path: str, upload_id: str
    ) -> dict[int, tuple[str, int]]:
        """The parts S3 holds of an upload: number to (ETag, size)."""
        parts: dict[int, tuple[str, int]] = {}
        marker = 0
        for _ in range(11):  # 10,000 parts at most, 1,000 a page
            answer = await self.request(
                location,
                path,
                "list_parts",
                Key=key_of(path),
                UploadId=upload_id,
                PartNumberMarker=marker,
            )
            for part in answer.get("Parts", ()):
                parts[int(part["PartNumber"])] = (str(part["ETag"]), int(part["Size"]))
            if not answer.get("IsTruncated"):
                break
            marker = int(answer["NextPartNumberMarker"])
        return parts

    async def delete(self, location: ExecutionLocation, path: str) -> None:
        """Delete the one object at ``path`` (:meth:`remove` also looks below it)."""
        try:
            await self.request(location, path, "delete_object", Key=key_of(path))
        finally:
            self.metadata.changed(location, [path], parents=False)

    async def discard_leftovers(
        self, location: ExecutionLocation, path: str, upload_id: str, marker: str
    ) -> None:
        """Abort the other multipart uploads of ``path``'s key and delete their markers:
        what interrupted writers left (their abort failed, or their run was never
        resumed), now that ``upload_id`` completed. Best effort: errors are ignored."""
        key = key_of(path)
        with contextlib.suppress(ConnectorError):
            answer = await self.request(location, path, "list_multipart_uploads", Prefix=key)
            for upload in answer.get("Uploads", ()):
                if upload["Key"] == key and upload["UploadId"] != upload_id:
                    await self.abort_upload(location, path, upload["UploadId"])
        prefix = key_of(temporary_prefix(path))
        with contextlib.suppress(ConnectorError):
            answer = await self.request(location, path, "list_objects_v2", Prefix=prefix)
            for item in answer.get("Contents", ()):
                found = "/" + item["Key"]
                if found != marker and is_temporary_of(found, path):
                    await self.delete(location, found)

    async def abort_upload(self, location: ExecutionLocation, path: str, upload_id: str) -> None:
        await self.request(
            location, path, "abort_multipart_upload", Key=key_of(path), UploadId=upload_id
        )

    async def keys(self, location: ExecutionLocation, prefix: str, path: str) -> list[str]:
        """Every key under ``prefix`` (ListObjectsV2, page after page)."""
        await self._s3()
        keys: list[str] = []
        try:
            async for page in self._lister.paginate(Bucket=location.name, Prefix=prefix):
                keys.extend(item["Key"] for item in page.get("Contents", ()))
        except Exception as exc:
            raise translate(exc, location, path) from exc
        return keys

    async def get(self, location: ExecutionLocation, path: str) -> bytes:
        """The whole object at ``path``, in one GET."""
        answer = await self.request(location, path, "get_object", Key=key_of(path))
        async with answer["Body"] as body:
            return bytes(await body.read())

    async def close(self) -> None:
        """Close the clients."""
        await self._stack.aclose()
        self._client = self._once = None
