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
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any, Self

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
    NotDirectoryError,
    PathExistsError,
    PathNotFoundError,
    Reader,
    UnsafePathError,
    Verification,
    WalkEntry,
    WriteItem,
    Writer,
    crc32c_async,
    is_temporary_of,
    parse_options,
    relpath_fault,
)
from streamflow_data_s3.large_copies import copy_in_parts
from streamflow_data_s3.options import S3Options
from streamflow_data_s3.store import S3Store, key_of
from streamflow_data_s3.streams import S3Reader, S3Writer

__all__ = ["S3Connector"]

_DEFAULT_MODE, _DIRECTORY_MODE = 0o644, 0o755


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


class S3Connector(Connector):
    """The buckets of an S3 endpoint, each one location."""

    capabilities = Capabilities(
        symlinks=False,
        ranged_writes=False,
        server_side_copy=True,
        atomic_directories=False,
        verification=Verification.RECEIVED,  # S3 checks each request's CRC32C
    )
    bulk_concurrency = 1024
    """Every item of a batch at once: the bucket's request limit (``max_concurrency``) is
    what bounds the requests, and the rest wait with data the batch holds anyway (queued
    items keep the requests back to back: 15% more objects/s than at ``max_concurrency``)."""

    def __init__(self, options: S3Options) -> None:
        self.options = options
        """The validated options this connector runs with."""
        self.store = S3Store(options)
        """The endpoint's requests (see :mod:`streamflow_data_s3.store`)."""
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

    # -- metadata --------------------------------------------------------------------------

    async def stat(
        self, location: ExecutionLocation, path: str, *, follow_symlinks: bool = False
    ) -> FileStat:
        """S3 has no links: ``follow_symlinks`` changes nothing."""
        return await self.store.metadata.stated(
            location, path, False, lambda: self._stat(location, path)
        )

    async def _stat(self, location: ExecutionLocation, path: str) -> FileStat:
        """The object at the key, else the directory marker, else any key below."""
        key = key_of(path)
        if not key:
            return FileStat(FileKind.DIRECTORY, 0, _DIRECTORY_MODE, 0)
        if (head := await self.store.head(location, key, path)) is not None:
            return _stat(
                FileKind.FILE, head["ContentLength"], head["Metadata"], head["LastModified"]
            )
        if (marker := await self.store.head(location, key + "/", path)) is not None:
            return _stat(FileKind.DIRECTORY, 0, marker["Metadata"], marker["LastModified"])
        listed = await self.store.request(
            location, path, "list_objects_v2", Prefix=key + "/", MaxKeys=1
        )
        if not listed.get("KeyCount"):
            raise PathNotFoundError(location, path)
        return FileStat(FileKind.DIRECTORY, 0, _DIRECTORY_MODE, 0)

    async def walk(self, location: ExecutionLocation, path: str) -> AsyncIterator[WalkEntry]:
        for entry in await self.store.metadata.walked(
            location, path, lambda: self._walk(location, path)
        ):
            yield entry

    async def _walk(self, location: ExecutionLocation, path: str) -> tuple[WalkEntry, ...]:
        """Every key under the prefix, with its metadata (a HEAD each, several at once)."""
        if (await self.stat(location, path)).kind is not FileKind.DIRECTORY:
            raise NotDirectoryError(location, path)
        prefix = key_of(path).rstrip("/") + "/" if key_of(path) else ""
        keys = await self.store.keys(location, prefix, path)
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
            head = await self.store.head(location, key, "/" + key)
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
        return S3Reader(self.store, location, path)

    async def read_file(self, location: ExecutionLocation, path: str) -> bytes:
        """The whole object in one GET."""
        return await self.store.get(location, path)

    # -- writing -----------------------------------------------------------------------------

    async def _parent_exists(self, location: ExecutionLocation, path: str) -> None:
        parent = path.rstrip("/").rpartition("/")[0]
        if key_of(parent) and (await self.stat(location, parent)).kind is not FileKind.DIRECTORY:
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
        return S3Writer(self.store, location, path, _metadata(mode, mtime_ns))

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
        return await S3Writer.resume(self.store, location, path, _metadata(mode, mtime_ns), token)

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
        await self.store.put(location, path, body, _metadata(mode, mtime_ns))

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
        key = key_of(path).rstrip("/")
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
                await self.store.put(location, current + "/", b"", {})
                directory = FileStat(FileKind.DIRECTORY, 0, _DIRECTORY_MODE, 0)
                self.store.metadata.keep_stat(location, current, False, directory)

    async def remove(self, location: ExecutionLocation, path: str) -> None:
        """Delete the object and every key below ``path``."""
        key = key_of(path).rstrip("/")
        try:
            keys = [key] if key else []
            keys += await self.store.keys(location, key + "/" if key else "", path)
            for start in range(0, len(keys), 1000):
                batch = [{"Key": name} for name in keys[start : start + 1000]]
                await self.store.request(
                    location, path, "delete_objects", Delete={"Objects": batch, "Quiet": True}
                )
        finally:
            self.store.metadata.changed_tree(location)

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
        key = key_of(path).rstrip("/")
        if not key:
            return
        if stat.kind is FileKind.DIRECTORY:
            key += "/"
            if await self.store.head(location, key, path) is None:
                await self.store.put(location, "/" + key, b"", {})
        merged = _metadata(stat.mode, stat.mtime_ns) | _metadata(mode, mtime_ns)
        try:
            await self.store.request(
                location,
                path,
                "copy_object",
                Key=key,
                CopySource={"Bucket": location.name, "Key": key},
                Metadata=merged,
                MetadataDirective="REPLACE",
            )
        finally:
            self.store.metadata.changed(location, [path], parents=False)

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
        head = await self.store.head(location, key_of(src), src)
        if head is None:
            raise PathNotFoundError(location, src)
        length = int(head["ContentLength"])
        if size is not None and length != size:
            raise ChecksumMismatchError(location, dst, f"source has {length} bytes, not {size}")
        await self._parent_exists(location, dst)
        metadata = dict(head["Metadata"]) | _metadata(mode, mtime_ns)
        source = {"Bucket": location.name, "Key": key_of(src)}
        try:
            if length <= self.copy_limit:
                await self.store.request(
                    location,
                    dst,
                    "copy_object",
                    Key=key_of(dst),
                    CopySource=source,
                    Metadata=metadata,
                    MetadataDirective="REPLACE",
                )
            else:
                parts = self.copy_part_size
                await copy_in_parts(self.store, location, dst, source, length, metadata, parts)
        finally:
            self.store.metadata.changed(location, [dst], parents=False)

    async def close(self) -> None:
        await self.store.close()
