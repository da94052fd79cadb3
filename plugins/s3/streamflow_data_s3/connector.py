"""The S3 connector: buckets as locations, keys as paths (see :class:`S3Options`).

Paths map to keys without their leading ``/``. Directories are prefixes; ``mkdir`` also
writes a marker object ``dir/`` so that empty directories exist and keep their mode and
time. A file's mode and modification time are object metadata (``x-amz-meta-mode``,
``x-amz-meta-mtime-ns``), so a tree copied to S3 and back gets them back. S3 has no
symbolic links: a link in a source tree is read through, and its target's bytes are
stored (:attr:`Capabilities.symlinks` is False). Objects appear whole when their upload
completes, so every write is atomic; a tree is not (no atomic rename).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Any, Self

from aiobotocore.config import AioConfig
from botocore.exceptions import ClientError

from streamflow_data.sdk import (
    Capabilities,
    ChecksumMismatchError,
    Connector,
    ConnectorError,
    Digest,
    ExecutionLocation,
    FileKind,
    FileStat,
    InvalidPathError,
    LocationUnreachableError,
    MetadataCache,
    MetadataItem,
    NotDirectoryError,
    PathExistsError,
    PathNotFoundError,
    Reader,
    UnsafePathError,
    WalkEntry,
    WriteItem,
    Writer,
    crc32c_async,
    is_temporary_of,
    parse_options,
    relpath_fault,
    temporary_prefix,
)
from streamflow_data_s3.client import prepared_session
from streamflow_data_s3.failures import error_code, translate
from streamflow_data_s3.large_copies import copy_in_parts
from streamflow_data_s3.options import S3Options
from streamflow_data_s3.parts import PartBody
from streamflow_data_s3.streams import S3Reader, S3Writer, body_headers, check_etag

__all__ = ["S3Connector"]

_DEFAULT_MODE, _DIRECTORY_MODE = 0o644, 0o755


def _key(path: str) -> str:
    return path.lstrip("/")


def _metadata(mode: int | None, mtime_ns: int | None) -> dict[str, str]:
    metadata = {}
    if mode is not None:
        metadata["mode"] = f"{mode & 0o7777:o}"
    if mtime_ns is not None:
        metadata["mtime-ns"] = str(mtime_ns)
    return metadata


def _stat(kind: FileKind, size: int, metadata: Mapping[str, str], modified: Any) -> FileStat:
    default = _DIRECTORY_MODE if kind is FileKind.DIRECTORY else _DEFAULT_MODE
    mode = int(metadata["mode"], 8) if "mode" in metadata else default
    if "mtime-ns" in metadata:
        mtime_ns = int(metadata["mtime-ns"])
    else:
        mtime_ns = int(modified.timestamp() * 1e9) if modified is not None else 0
    return FileStat(kind, size, mode, mtime_ns)


def _send_at_once(request: Any, **_: object) -> None:
    """Send a PUT's body with its headers. botocore asks for ``Expect: 100-continue`` on
    every PutObject, and aiohttp then waits for the server's interim answer before sending
    the body: a round trip more per object, for bodies below the multipart threshold."""
    request.headers.pop("Expect", None)


_UNREACHABLE_FOR = 10.0
"""Seconds after a request found the endpoint unreachable through all its retries during
which requests are tried once: every operation of a transfer, and the engine's retries of
each, would otherwise wait out the same back-off for the same answer."""


class S3Connector(Connector):
    """The buckets of an S3 endpoint, each one location."""

    capabilities = Capabilities(
        symlinks=False, ranged_writes=False, server_side_copy=True, atomic_directories=False
    )
    bulk_concurrency = 1024
    """Every item of a batch at once: the bucket's request limit (``max_concurrency``) is
    what bounds the requests, and the rest wait with data the batch holds anyway (queued
    items keep the requests back to back: 15% more objects/s than at ``max_concurrency``)."""

    def __init__(self, options: S3Options) -> None:
        self.options = options
        """The validated options this connector runs with."""
        self._client: Any = None
        self._once: Any = None  # the same, trying each request once (see _s3)
        self._unreachable_until = 0.0
        self._lister: Any = None  # the ListObjectsV2 paginator
        self._stack = contextlib.AsyncExitStack()
        self._opening = asyncio.Lock()
        self._slots: dict[str, asyncio.Semaphore] = {}
        self._metadata = MetadataCache(options.metadata_ttl)
        self.copy_limit = 5 * 1024**3
        """Objects up to this size are copied with one CopyObject (its limit on AWS)."""
        self.copy_part_size = 512 * 1024**2
        """Larger ones with UploadPartCopy, in parts of this size."""

    @classmethod
    def from_options(cls, options: Mapping[str, object]) -> Self:
        """Build from a mapping of :class:`S3Options` fields."""
        return cls(parse_options(S3Options, options, "s3 connector"))

    def locations(self, deployment: str) -> Sequence[ExecutionLocation]:
        """One location per bucket, named after it."""
        return tuple(ExecutionLocation(deployment, bucket) for bucket in self.options.buckets)

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

    async def _head(self, location: ExecutionLocation, key: str, path: str) -> Any | None:
        """The object's HEAD answer, or None when there is no such key."""
        try:
            return await self.request(location, path, "head_object", Key=key)
        except PathNotFoundError:
            return None

    # -- metadata --------------------------------------------------------------------------

    async def stat(
        self, location: ExecutionLocation, path: str, *, follow_symlinks: bool = False
    ) -> FileStat:
        """S3 has no links: ``follow_symlinks`` changes nothing."""
        return await self._metadata.stated(
            location, path, False, lambda: self._stat(location, path)
        )

    async def _stat(self, location: ExecutionLocation, path: str) -> FileStat:
        """The object at the key, else the directory marker, else any key below."""
        key = _key(path)
        if not key:
            return FileStat(FileKind.DIRECTORY, 0, _DIRECTORY_MODE, 0)
        if (head := await self._head(location, key, path)) is not None:
            return _stat(
                FileKind.FILE, head["ContentLength"], head["Metadata"], head["LastModified"]
            )
        if (marker := await self._head(location, key + "/", path)) is not None:
            return _stat(FileKind.DIRECTORY, 0, marker["Metadata"], marker["LastModified"])
        listed = await self.request(location, path, "list_objects_v2", Prefix=key + "/", MaxKeys=1)
        if not listed.get("KeyCount"):
            raise PathNotFoundError(location, path)
        return FileStat(FileKind.DIRECTORY, 0, _DIRECTORY_MODE, 0)

    async def walk(self, location: ExecutionLocation, path: str) -> AsyncIterator[WalkEntry]:
        for entry in await self._metadata.walked(
            location, path, lambda: self._walk(location, path)
        ):
            yield entry

    async def _walk(self, location: ExecutionLocation, path: str) -> tuple[WalkEntry, ...]:
        """Every key under the prefix, with its metadata (a HEAD each, several at once)."""
        if (await self.stat(location, path)).kind is not FileKind.DIRECTORY:
            raise NotDirectoryError(location, path)
        prefix = _key(path).rstrip("/") + "/" if _key(path) else ""
        keys: list[str] = []
        await self._s3()
        pages = self._lister.paginate(Bucket=location.name, Prefix=prefix)
        try:
            async for page in pages:
                keys.extend(item["Key"] for item in page.get("Contents", ()))
        except Exception as exc:
            raise translate(exc, location, path) from exc
        for key in keys:
            relpath = key[len(prefix) :].removesuffix("/")
            fault = relpath_fault(relpath) if relpath else None
            if fault is not None:  # a key no file path can hold: reported, not left out of the copy
                raise UnsafePathError(location, "/" + key, f"the key has {fault}")
        directories = {
            relpath.rsplit("/", depth)[0]
            for relpath in (key[len(prefix) :] for key in keys)
            for depth in range(1, relpath.count("/") + 1)
        }
        stats: dict[str, FileStat] = {}

        async def describe(key: str) -> None:
            relpath = key[len(prefix) :].rstrip("/")
            head = await self._head(location, key, "/" + key)
            if head is None or not relpath:
                return
            kind = FileKind.DIRECTORY if key.endswith("/") else FileKind.FILE
            size = 0 if kind is FileKind.DIRECTORY else head["ContentLength"]
            stats[relpath] = _stat(kind, size, head["Metadata"], head["LastModified"])

        async with asyncio.TaskGroup() as group:
            for key in keys:
                group.create_task(describe(key))
        for directory in directories:
            stats.setdefault(directory, FileStat(FileKind.DIRECTORY, 0, _DIRECTORY_MODE, 0))
        return tuple(WalkEntry(relpath, stats[relpath]) for relpath in sorted(stats))

    # -- reading -----------------------------------------------------------------------------

    async def open_reader(self, location: ExecutionLocation, path: str) -> Reader:
        if (await self.stat(location, path)).kind is FileKind.DIRECTORY:
            raise PathExistsError(location, path, "a directory, not a file")
        return S3Reader(self, location, path)

    async def open_range(
        self, location: ExecutionLocation, path: str, offset: int, etag: str | None = None
    ) -> Any:
        """The GET answer of the object from ``offset`` to its end (None past it); with
        ``etag``, only of that version of the object (a retryable error for another)."""
        pinned = {} if etag is None else {"IfMatch": etag}
        try:
            return await self.request(
                location, path, "get_object", Key=_key(path), Range=f"bytes={offset}-", **pinned
            )
        except ConnectorError as exc:
            cause = exc.__cause__
            if isinstance(cause, ClientError) and error_code(cause) == "InvalidRange":
                return None
            raise

    async def etag(self, location: ExecutionLocation, path: str) -> str | None:
        """The ETag of the object at ``path`` now (a HEAD, no kept answer), or None."""
        answer = await self._head(location, _key(path), path)
        return None if answer is None else str(answer["ETag"])

    async def read_file(self, location: ExecutionLocation, path: str) -> bytes:
        answer = await self.request(location, path, "get_object", Key=_key(path))
        async with answer["Body"] as body:
            return bytes(await body.read())

    # -- writing -----------------------------------------------------------------------------

    async def _parent_exists(self, location: ExecutionLocation, path: str) -> None:
        parent = path.rstrip("/").rpartition("/")[0]
        if _key(parent) and (await self.stat(location, parent)).kind is not FileKind.DIRECTORY:
            raise NotDirectoryError(location, parent)

    async def open_writer(
        self,
        location: ExecutionLocation,
        path: str,
        *,
        mode: int | None = None,
        mtime_ns: int | None = None,
        atomic: bool = True,
    ) -> Writer:
        """An object that appears at ``path`` when the commit completes its upload."""
        await self._parent_exists(location, path)
        return S3Writer(self, location, path, _metadata(mode, mtime_ns))

    async def resume_writer(
        self,
        location: ExecutionLocation,
        path: str,
        token: str,
        *,
        mode: int | None = None,
        mtime_ns: int | None = None,
        atomic: bool = True,
    ) -> Writer:
        """Continue a suspended upload from the parts S3 holds (ListParts) and the bytes
        its marker kept (:mod:`streamflow_data_s3.partial`)."""
        if not is_temporary_of(token, path):
            raise InvalidPathError(f"{token!r} is not the marker of an upload of {path!r}")
        return await S3Writer.resume(self, location, path, _metadata(mode, mtime_ns), token)

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
                Key=_key(path),
                Body=body,
                Metadata=metadata,
                **headers,
            )
            check_etag(location, path, answer, etag)
        finally:
            self._metadata.changed(location, [path], parents=False)

    async def start_upload(
        self, location: ExecutionLocation, path: str, metadata: dict[str, str]
    ) -> str:
        """Start a multipart upload; returns its id."""
        answer = await self.request(
            location,
            path,
            "create_multipart_upload",
            Key=_key(path),
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
            Key=_key(path),
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
                Key=_key(path),
                UploadId=upload_id,
                MultipartUpload={"Parts": parts},
            )
        finally:
            self._metadata.changed(location, [path], parents=False)

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
                Key=_key(path),
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
            await self.request(location, path, "delete_object", Key=_key(path))
        finally:
            self._metadata.changed(location, [path], parents=False)

    async def discard_leftovers(
        self, location: ExecutionLocation, path: str, upload_id: str, marker: str
    ) -> None:
        """Abort the other multipart uploads of ``path``'s key and delete their markers:
        what interrupted writers left (their abort failed, or their run was never
        resumed), now that ``upload_id`` completed. Best effort: errors are ignored."""
        key = _key(path)
        with contextlib.suppress(ConnectorError):
            answer = await self.request(location, path, "list_multipart_uploads", Prefix=key)
            for upload in answer.get("Uploads", ()):
                if upload["Key"] == key and upload["UploadId"] != upload_id:
                    await self.abort_upload(location, path, upload["UploadId"])
        prefix = _key(temporary_prefix(path))
        with contextlib.suppress(ConnectorError):
            answer = await self.request(location, path, "list_objects_v2", Prefix=prefix)
            for item in answer.get("Contents", ()):
                found = "/" + item["Key"]
                if found != marker and is_temporary_of(found, path):
                    await self.delete(location, found)

    async def abort_upload(self, location: ExecutionLocation, path: str, upload_id: str) -> None:
        await self.request(
            location, path, "abort_multipart_upload", Key=_key(path), UploadId=upload_id
        )

    async def write_file(
        self,
        location: ExecutionLocation,
        path: str,
        data: bytes | memoryview,
        *,
        mode: int | None = None,
        mtime_ns: int | None = None,
        expected: Digest | None = None,
        atomic: bool = True,
    ) -> None:
        """A small file in one PUT; a large one through a multipart writer."""
        if len(data) > self.options.part_size:
            await super().write_file(
                location, path, data, mode=mode, mtime_ns=mtime_ns, expected=expected
            )
            return
        body = bytes(data)
        if (
            expected is not None
            and (actual := Digest(len(body), await crc32c_async(body))) != expected
        ):
            raise ChecksumMismatchError(location, path, f"expected {expected}, given {actual}")
        await self._parent_exists(location, path)
        await self.put(location, path, body, _metadata(mode, mtime_ns))

    async def _check_parents(self, location: ExecutionLocation, paths: Sequence[str]) -> None:
        """Look up each distinct directory of ``paths`` once, so that the many files of a
        batch find it known instead of each asking at the same time."""
        for parent in dict.fromkeys(path.rstrip("/").rpartition("/")[0] for path in paths):
            with contextlib.suppress(ConnectorError):  # each file reports its own failure
                await self._parent_exists(location, parent + "/-")

    async def write_files(
        self, location: ExecutionLocation, items: Sequence[WriteItem]
    ) -> list[ConnectorError | None]:
        """Many PUTs at once (see :attr:`bulk_concurrency`), each directory of the batch
        looked up once beforehand rather than by every file at the same time."""
        await self._check_parents(location, [item.path for item in items])
        return await super().write_files(location, items)

    # -- directories and metadata ------------------------------------------------------------

    async def mkdir(self, location: ExecutionLocation, path: str) -> None:
        """Write the marker of ``path`` and of each missing parent."""
        key = _key(path).rstrip("/")
        if not key:
            return
        parts = key.split("/")
        for depth in range(1, len(parts) + 1):
            current = "/" + "/".join(parts[:depth])
            try:
                found = await self.stat(location, current)
            except PathNotFoundError:
                found = None
            if found is not None and found.kind is not FileKind.DIRECTORY:
                raise PathExistsError(location, current, "a file, not a directory")
            if found is None:
                await self.put(location, current + "/", b"", {})
                directory = FileStat(FileKind.DIRECTORY, 0, _DIRECTORY_MODE, 0)
                self._metadata.keep_stat(location, current, False, directory)

    async def remove(self, location: ExecutionLocation, path: str) -> None:
        """Delete the object and every key below ``path``."""
        key = _key(path).rstrip("/")
        try:
            keys = [key] if key else []
            await self._s3()
            pages = self._lister.paginate(Bucket=location.name, Prefix=key + "/" if key else "")
            async for page in pages:
                keys.extend(item["Key"] for item in page.get("Contents", ()))
            for start in range(0, len(keys), 1000):
                batch = [{"Key": name} for name in keys[start : start + 1000]]
                await self.request(
                    location, path, "delete_objects", Delete={"Objects": batch, "Quiet": True}
                )
        except ConnectorError:
            raise
        except Exception as exc:
            raise translate(exc, location, path) from exc
        finally:
            self._metadata.changed_tree(location)

    async def set_metadata(
        self,
        location: ExecutionLocation,
        path: str,
        *,
        mode: int | None = None,
        mtime_ns: int | None = None,
    ) -> None:
        """Rewrite the object's (or the directory marker's) metadata, server side."""
        stat = await self.stat(location, path)
        key = _key(path).rstrip("/")
        if not key:
            return
        if stat.kind is FileKind.DIRECTORY:
            key += "/"
            if await self._head(location, key, path) is None:
                await self.put(location, "/" + key, b"", {})
        merged = _metadata(stat.mode, stat.mtime_ns) | _metadata(mode, mtime_ns)
        try:
            await self.request(
                location,
                path,
                "copy_object",
                Key=key,
                CopySource={"Bucket": location.name, "Key": key},
                Metadata=merged,
                MetadataDirective="REPLACE",
            )
        finally:
            self._metadata.changed(location, [path], parents=False)

    async def apply_metadata(
        self, location: ExecutionLocation, items: Sequence[MetadataItem]
    ) -> None:
        """Each item in order (deepest directories come first from the engine)."""
        for item in items:
            await self.set_metadata(location, item.path, mode=item.mode, mtime_ns=item.mtime_ns)

    # -- copies in the endpoint --------------------------------------------------------------

    async def copy(
        self,
        location: ExecutionLocation,
        src: str,
        dst: str,
        *,
        mode: int | None = None,
        mtime_ns: int | None = None,
        size: int | None = None,
        atomic: bool = True,
    ) -> None:
        """CopyObject (UploadPartCopy beyond 5 GiB): no bytes pass through us."""
        head = await self._head(location, _key(src), src)
        if head is None:
            raise PathNotFoundError(location, src)
        length = int(head["ContentLength"])
        if size is not None and length != size:
            raise ChecksumMismatchError(location, dst, f"source has {length} bytes, not {size}")
        await self._parent_exists(location, dst)
        metadata = dict(head["Metadata"]) | _metadata(mode, mtime_ns)
        source = {"Bucket": location.name, "Key": _key(src)}
        try:
            if length <= self.copy_limit:
                await self.request(
                    location,
                    dst,
                    "copy_object",
                    Key=_key(dst),
                    CopySource=source,
                    Metadata=metadata,
                    MetadataDirective="REPLACE",
                )
            else:
                await copy_in_parts(self, location, dst, source, length, metadata)
        finally:
            self._metadata.changed(location, [dst], parents=False)

    async def close(self) -> None:
        await self._stack.aclose()
        self._client = self._once = None
