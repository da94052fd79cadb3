"""Validated deliveries: files listed in a manifest, each copied and then proven.

A manifest is a CSV file with the columns ``path,size,algorithm,checksum``: a path
relative to the delivery's source directory, the size in bytes, and the checksum the
delivered bytes must have, as ``crc32`` or ``crc32c`` (4 big-endian bytes in base64, as
S3 writes them, e.g. ``yH2GHg==``) or ``sha256`` (64 hex digits).

Each file goes ``ready -> pending -> transferring -> done -> valid | invalid``, or
``failed`` once its retries are spent, as in the validated upload client the design
follows. *valid* means the destination was read back and matched the manifest;
*invalid* that it did not (the copy is then removed from the destination and invalidated
in the replica graph, so nobody uses it). States are kept in the catalog: delivering the
same manifest to the same destination again moves only what is not yet valid.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import hashlib
import io
import os
import re
import zlib
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from streamflow_data.catalog import DeliveryRows, StoredFile
from streamflow_data.checksum import crc32c, crc32c_base64
from streamflow_data.connectors.base import FileKind, each_item
from streamflow_data.errors import (
    ConfigurationError,
    ConnectorError,
    PathNotFoundError,
    StreamFlowDataError,
    TransferCancelledError,
    TransferError,
)
from streamflow_data.manager import DefaultDataManager
from streamflow_data.model import ExecutionLocation
from streamflow_data.transfer.plan import join
from streamflow_data.transfer.readback import Hasher, read_back

__all__ = [
    "ALGORITHMS",
    "Delivery",
    "DeliveryFile",
    "DeliveryState",
    "ManifestEntry",
    "read_manifest",
]

DeliveryState = Literal["ready", "pending", "transferring", "done", "valid", "invalid", "failed"]
_LIST_ABOVE = 64
"""Above this many files to check, a rerun lists the destination rather than stat each."""
ALGORITHMS = ("crc32", "crc32c", "sha256")
"""The checksum algorithms a manifest may use."""

_FORMATS = {
    "crc32": re.compile(r"^[A-Za-z0-9+/]{6}==$"),
    "crc32c": re.compile(r"^[A-Za-z0-9+/]{6}==$"),
    "sha256": re.compile(r"^[0-9a-fA-F]{64}$"),
}
_COLUMNS = ("path", "size", "algorithm", "checksum")


@dataclass(frozen=True, slots=True)
class ManifestEntry:
    """One file a delivery must bring to its destination, and what it must be there."""

    relpath: str
    size: int
    algorithm: str
    checksum: str


def read_manifest(path: str) -> list[ManifestEntry]:
    """Read and check a manifest (blocking: call it in a thread).

    Raises :class:`ConfigurationError` naming the file, the line and the column of the
    first mistake: a missing column, a path that is absolute or leaves the source
    directory, a path listed twice, a bad size, an unknown algorithm or a malformed
    checksum.
    """
    try:
        with open(path, encoding="utf-8", newline="") as file:
            text = file.read()
    except OSError as exc:
        raise ConfigurationError(f"{path}: cannot read the manifest ({exc.strerror})") from exc
    reader = csv.DictReader(io.StringIO(text))
    missing = [column for column in _COLUMNS if column not in (reader.fieldnames or ())]
    if missing:
        raise ConfigurationError(
            f"{path}: the manifest needs the columns {','.join(_COLUMNS)}; "
            f"missing: {', '.join(missing)}"
        )
    entries: dict[str, ManifestEntry] = {}
    for line, row in enumerate(reader, start=2):
        entry = _entry(f"{path}, line {line}", row)
        if entry.relpath in entries:
            raise ConfigurationError(f"{path}, line {line}: path {entry.relpath!r} listed twice")
        entries[entry.relpath] = entry
    if not entries:
        raise ConfigurationError(f"{path}: the manifest lists no file")
    return list(entries.values())


def _entry(where: str, row: dict[str, str]) -> ManifestEntry:
    relpath = os.path.normpath(row["path"] or "")
    if not row["path"] or relpath.startswith(("/", "..")) or relpath == ".":
        raise ConfigurationError(
            f"{where}: path: expected a file path inside the source directory, got {row['path']!r}"
        )
    try:
        size = int(row["size"])
        if size < 0:
            raise ValueError
    except (TypeError, ValueError):
        raise ConfigurationError(
            f"{where}: size: expected a whole number of bytes, got {row['size']!r}"
        ) from None
    algorithm = (row["algorithm"] or "").strip().lower()
    if algorithm not in _FORMATS:
        raise ConfigurationError(
            f"{where}: algorithm: expected one of {', '.join(ALGORITHMS)}, got {row['algorithm']!r}"
        )
    checksum = (row["checksum"] or "").strip()
    if not _FORMATS[algorithm].match(checksum):
        expected = "64 hex digits" if algorithm == "sha256" else "4 bytes in base64"
        raise ConfigurationError(f"{where}: checksum: expected {expected}, got {checksum!r}")
    return ManifestEntry(
        relpath, size, algorithm, checksum.lower() if algorithm == "sha256" else checksum
    )


class _Crc:
    """CRC32 or CRC32C, running, rendered as S3 renders them."""

    def __init__(self, function: Callable[[bytes, int], int]) -> None:
        self._function = function
        self.value = 0

    def update(self, data: bytes) -> None:
        self.value = self._function(data, self.value)

    def text(self) -> str:
        return crc32c_base64(self.value)  # the 4-byte base64 rendering serves both CRCs


def _checksum_of(algorithm: str) -> tuple[Hasher, Callable[[], str]]:
    if algorithm == "sha256":
        sha = hashlib.sha256()
        return sha, sha.hexdigest
    crc = _Crc(zlib.crc32 if algorithm == "crc32" else crc32c)
    return crc, crc.text


@dataclass(slots=True)
class DeliveryFile:
    """One manifest file in a delivery: where it stands, and why."""

    entry: ManifestEntry
    state: DeliveryState = "ready"
    retries: int = 0
    """Transfers tried again after a failure, over every run."""
    message: str | None = None
    """Why the file is invalid or failed (or was interrupted)."""
    skipped: bool = False
    """Valid from an earlier run: nothing was moved this time."""

    def stored(self) -> StoredFile:
        entry = self.entry
        return StoredFile(
            entry.relpath,
            entry.size,
            entry.algorithm,
            entry.checksum,
            self.state,
            self.retries,
            self.message,
        )


class Delivery:
    """Delivering the files of one manifest from a source directory to a destination
    directory, through a data manager whose catalog keeps the states."""

    def __init__(
        self,
        manager: DefaultDataManager,
        manifest: str,
        entries: Sequence[ManifestEntry],
        source: tuple[ExecutionLocation, str],
        destination: tuple[ExecutionLocation, str],
        *,
        max_retries: int = 2,
        on_change: Callable[[DeliveryFile], None] | None = None,
    ) -> None:
        self._manager = manager
        self.manifest = os.path.abspath(manifest)
        self.files = [DeliveryFile(entry) for entry in entries]
        """Every manifest file, in manifest order."""
        self.source = source
        self.destination = destination
        self.max_retries = max_retries
        """Times a failed transfer of a file is tried again in one run."""
        self._on_change = on_change
        self._rows: DeliveryRows | None = None
        self.id: int | None = None
        """The delivery's number in the catalog (None without one)."""

    @property
    def counts(self) -> Counter[str]:
        """How many files are in each state."""
        return Counter(file.state for file in self.files)

    @property
    def nothing_to_do(self) -> bool:
        """Every file was already valid from an earlier run."""
        return all(file.skipped for file in self.files)

    def csv(self) -> str:
        """The states as CSV: ``path,size,algorithm,checksum,state,retries,message``."""
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow([*_COLUMNS, "state", "retries", "message"])
        for file in self.files:
            e = file.entry
            row = [e.relpath, e.size, e.algorithm, e.checksum, file.state, file.retries]
            writer.writerow([*row, file.message or ""])
        return out.getvalue()

    async def run(self) -> None:
        """Move and validate every file not yet valid, at most ``max_concurrent_files``
        at once; stops early (files back to ``ready``) if the manager shuts down."""
        catalog = self._manager.catalog
        if catalog is not None:
            (src, src_root), (dst, dst_root) = self.source, self.destination
            self._rows = await catalog.delivery(
                self.manifest, f"{src}:{src_root}", f"{dst}:{dst_root}"
            )
            self.id = self._rows.id
        await self._recall()
        todo = [file for file in self.files if not file.skipped]
        for file in todo:
            self._set(file, "pending")
        limit = asyncio.Semaphore(self._manager.settings.max_concurrent_files)

        async def deliver(file: DeliveryFile) -> None:
            async with limit:
                await self._deliver(file)

        async with asyncio.TaskGroup() as group:
            for file in todo:
                group.create_task(deliver(file))
        if catalog is not None:
            await catalog.flush()

    async def _recall(self) -> None:
        """Take over what earlier runs proved: files valid then and still there, by size
        (one listing of the destination, not a request per file)."""
        earlier = {} if self._rows is None else self._rows.earlier
        candidates = []
        for file in self.files:
            stored = earlier.get(file.entry.relpath)
            if stored is None:
                continue
            file.retries = stored.retries
            entry = file.entry
            same = (stored.size, stored.algorithm, stored.checksum) == (
                entry.size,
                entry.algorithm,
                entry.checksum,
            )
            if stored.state == "valid" and same:
                candidates.append(file)
        if not candidates:
            return
        sizes = await self._sizes([file.entry.relpath for file in candidates])
        for file in candidates:
            if sizes.get(file.entry.relpath) == file.entry.size:
                file.state, file.skipped, file.message = "valid", True, None

    async def _sizes(self, relpaths: list[str]) -> dict[str, int]:
        """The sizes of those of ``relpaths`` that are files at the destination: by one
        listing of it when they are many, else by a stat each, several at a time (the
        destination may hold much besides this delivery)."""
        location, root = self.destination
        connector = self._manager.connector(location)
        sizes: dict[str, int] = {}
        if len(relpaths) > _LIST_ABOVE:
            with contextlib.suppress(PathNotFoundError):
                async for found in connector.walk(location, root):
                    if found.stat.kind is FileKind.FILE:
                        sizes[found.relpath] = found.stat.size
            return sizes

        async def size(relpath: str) -> int:
            stat = await connector.stat(location, join(root, relpath), follow_symlinks=True)
            return stat.size

        limit = self._manager.settings.max_concurrent_files
        for relpath, known in zip(relpaths, await each_item(relpaths, size, limit), strict=True):
            if isinstance(known, int):
                sizes[relpath] = known
            elif not isinstance(known, PathNotFoundError):
                raise known
        return sizes

    def _set(self, file: DeliveryFile, state: DeliveryState, message: str | None = None) -> None:
        file.state, file.message = state, message
        if self._rows is not None:
            self._rows.save([file.stored()])
        if self._on_change is not None:
            self._on_change(file)

    async def _deliver(self, file: DeliveryFile) -> None:
        src_location, src_root = self.source
        dst_location, dst_root = self.destination
        src_path = join(src_root, file.entry.relpath)
        dst_path = join(dst_root, file.entry.relpath)
        manager = self._manager
        attempts = 0
        while True:
            self._set(file, "transferring")
            try:
                manager.register_path(src_location, src_path)
                await manager.transfer_data(
                    src_location, src_path, [dst_location], dst_path, writable=True
                )
                break
            except TransferCancelledError:
                self._set(file, "ready", "interrupted")
                return
            except StreamFlowDataError as exc:
                cause = exc.failures[0].cause if isinstance(exc, TransferError) else exc
                retryable = isinstance(cause, ConnectorError) and cause.retryable
                if not retryable or attempts >= self.max_retries:
                    self._set(file, "failed", str(cause))
                    return
                attempts += 1
                file.retries += 1
                self._set(file, "pending", f"retrying after: {cause}")
        self._set(file, "done")
        try:
            problem = await self._validate(file.entry, dst_location, dst_path)
        except StreamFlowDataError as exc:
            problem = f"could not be read back: {exc}"
        if problem is None:
            self._set(file, "valid")
            return
        manager.invalidate_location(dst_location, dst_path)
        try:
            await manager.connector(dst_location).remove(dst_location, dst_path)
            problem += "; removed from the destination"
        except StreamFlowDataError as exc:
            problem += f"; could not remove it ({exc})"
        self._set(file, "invalid", problem)

    async def _validate(
        self, entry: ManifestEntry, location: ExecutionLocation, path: str
    ) -> str | None:
        """Read the delivered file back; what is wrong with it, or None."""
        hasher, result = _checksum_of(entry.algorithm)
        connector, block = self._manager.connector(location), self._manager.settings.block_size
        size = await read_back(connector, location, path, hasher, block)
        if size != entry.size:
            return f"size {size} bytes, the manifest says {entry.size}"
        found = result()
        if found != entry.checksum:
            return f"{entry.algorithm} {found}, the manifest says {entry.checksum}"
        return None
