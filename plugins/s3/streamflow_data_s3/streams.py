"""Objects read by ranged GETs and written by single PUTs or parallel multipart uploads.

A writer takes the engine's blocks in order. Up to ``part_size`` bytes it keeps them and
publishes them with one PUT on commit; beyond, it starts a multipart upload and sends each
full part in the background, up to the bucket's request limit at once, so memory stays
within ``max_concurrency x part_size`` per bucket whatever the object size. Every request
carries the body's CRC32C (``x-amz-checksum-crc32c``), which S3 checks: the bytes stored
are the bytes sent. With the ``content_md5`` option, for servers that ignore that header,
each also carries its MD5 (``Content-MD5``) and the ETag S3 answers is compared with it.
Parts are gathered in reused buffers (:mod:`streamflow_data_s3.parts`). Nothing is
visible at the key before the commit; an abort (an error, a cancellation) aborts the
multipart upload, so no parts are left behind. A suspended writer (a transfer stopped to
be resumed) keeps its upload instead, recorded in a hidden marker object that a later run
continues from (:mod:`streamflow_data_s3.partial`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

from streamflow_data.sdk import (
    ConnectorError,
    Digest,
    ExecutionLocation,
    PathNotFoundError,
    Reader,
    Verification,
    Writer,
    crc32c_async,
    crc32c_combine,
    temporary_name,
)
from streamflow_data_s3.partial import Marker, parts_crc
from streamflow_data_s3.parts import PartBuffer
from streamflow_data_s3.store import S3Store

__all__ = ["S3Reader", "S3Writer"]


class S3Reader(Reader):
    """Reads of one object through streaming ranged GETs.

    A read at an offset where an earlier read stopped continues that GET's stream, so a
    chunk read block after block costs one request, not one per block; other offsets open
    a GET from there to the end of the object.
    """

    def __init__(self, store: S3Store, location: ExecutionLocation, path: str):
        self._store = store
        self._location = location
        self._path = path
        self._streams: dict[int, Any] = {}  # next offset -> the open body reaching it
        self._etag: str | None = None
        """The ETag of the object the first GET read: every later GET asks for it alone
        (If-Match), so that no read mixes two versions of the object."""

    async def changed(self) -> str | None:
        """By the object's ETag now, against the one the reads were pinned to."""
        if self._etag is None:
            return None
        now = await self._store.etag(self._location, self._path)
        if now is None:
            return "it was removed while it was read"
        return None if now == self._etag else "another object replaced it while it was read"

    async def read(self, offset: int, size: int) -> bytes:
        buffer = bytearray(size)
        got = await self.readinto(offset, memoryview(buffer))
        return bytes(buffer[:got])

    async def readinto(self, offset: int, buffer: memoryview) -> int:
        if not len(buffer):
            return 0
        body = self._streams.pop(offset, None)
        if body is None:
            answer = await self._store.open_range(self._location, self._path, offset, self._etag)
            if answer is None:
                return 0  # at or past the end
            self._etag = self._etag or answer.get("ETag")
            body = answer["Body"]
        filled = 0
        try:
            while filled < len(buffer):
                data = await body.read(len(buffer) - filled)
                if not data:
                    break
                buffer[filled : filled + len(data)] = data
                filled += len(data)
        except BaseException:
            body.close()
            raise
        if filled == len(buffer):
            self._streams[offset + filled] = body
        else:
            body.close()
        return filled

    async def close(self) -> None:
        for body in self._streams.values():
            body.close()
        self._streams.clear()


class S3Writer(Writer):
    """An object being written: see the module docstring."""

    verification = Verification.RECEIVED  # S3 checks each part's (and PUT's) CRC32C

    def __init__(
        self,
        store: S3Store,
        location: ExecutionLocation,
        path: str,
        metadata: dict[str, str],
        token: str | None = None,
    ) -> None:
        super().__init__(location, path)
        self._store = store
        self._metadata = metadata
        self._part_size = store.options.part_size
        self._token = temporary_name(path) if token is None else token
        self._marked = token is not None  # a marker object exists at the token's key
        self._pending = PartBuffer(self._part_size)  # bytes given, not yet sent
        self._size = 0
        self._crc = 0
        self._upload_id: str | None = None
        self._parts: dict[int, dict[str, Any]] = {}
        self._sending: set[asyncio.Task[None]] = set()
        self._next_part = 1

    @classmethod
    async def resume(
        cls,
        store: S3Store,
        location: ExecutionLocation,
        path: str,
        metadata: dict[str, str],
        token: str,
    ) -> S3Writer:
        """Continue the upload a suspended writer left at ``token`` (see
        :mod:`streamflow_data_s3.partial`); anything else found there is discarded and
        :class:`PathNotFoundError` raised, so that the file starts from zero."""
        writer = cls(store, location, path, metadata, token)
        found = Marker.decode(await store.get(location, token))
        if found is not None:
            writer._upload_id = found.upload_id
        if found is None or found.state != "suspended" or found.part_size != writer._part_size:
            await writer.abort()
            raise PathNotFoundError(location, path, "the earlier upload was not suspended")
        if found.upload_id is not None:
            try:
                listed = await store.list_parts(location, path, found.upload_id)
            except PathNotFoundError:
                listed = {}  # the upload is gone (aborted, or expired by a lifecycle rule)
            for number, (etag, _crc) in enumerate(found.parts, start=1):
                if listed.get(number) != (etag, writer._part_size):
                    await writer.abort()
                    raise PathNotFoundError(location, path, f"part {number} is not on S3")
        writer._parts = {
            number: {"PartNumber": number, "ETag": etag, "ChecksumCRC32C": crc}
            for number, (etag, crc) in enumerate(found.parts, start=1)
        }
        writer._next_part = len(found.parts) + 1
        sent = len(found.parts) * writer._part_size
        tail_crc = await crc32c_async(found.tail)
        writer._crc = crc32c_combine(writer._sent_crc(), tail_crc, len(found.tail))
        writer._pending.add(found.tail)
        writer._size = sent + len(found.tail)
        await writer._mark("live")
        return writer

    @property
    def resume_token(self) -> str:
        """The hidden key of the upload's marker."""
        return self._token

    async def write(self, offset: int, data: bytes | memoryview) -> None:
        if offset != self._size:
            await self._rewind(offset)
        self._crc = await crc32c_async(data, self._crc)
        self._size += len(data)
        self._pending.add(data)
        while self._pending.full:
            release = await self._ready()
            # From here to the part's task, nothing waits: a cancellation leaves the bytes
            # either pending or in a part being sent, never lost in between.
            self._start(self._pending.take_part(), release)

    async def _rewind(self, offset: int) -> None:
        """Drop the buffered bytes from ``offset`` on: a resumed writer may hold a little
        more than the engine recorded (a write cut short by the interruption)."""
        sent = (self._next_part - 1) * self._part_size
        if not sent <= offset <= self._size:
            raise ConnectorError(
                self.location,
                self.path,
                f"S3 writes must follow each other ({offset} != {self._size})",
            )
        await self._drain()  # the CRC32C of every part sent is known
        kept = self._pending.keep(offset - sent)
        self._crc = crc32c_combine(self._sent_crc(), await crc32c_async(kept), len(kept))
        self._size = offset

    def _sent_crc(self) -> int:
        crcs = [self._parts[number]["ChecksumCRC32C"] for number in sorted(self._parts)]
        return parts_crc(crcs, self._part_size)

    async def _ready(self) -> Callable[[], None]:
        """Start the multipart upload if need be, then wait for a request slot."""
        self._raise_failures()
        if self._upload_id is None:
            self._upload_id = await self._store.start_upload(
                self.location, self.path, self._metadata
            )
            await self._mark("live")
        return await self._store.request_slot(self.location)

    def _start(self, part: bytes | bytearray, release: Callable[[], None]) -> None:
        """Upload the next part in the background, in the request slot given."""
        number, self._next_part = self._next_part, self._next_part + 1
        self._sending.add(asyncio.create_task(self._upload(number, part, release)))

    async def _upload(
        self, number: int, part: bytes | bytearray, release: Callable[[], None]
    ) -> None:
        try:
            assert self._upload_id is not None
            self._parts[number] = await self._store.upload_part(
                self.location, self.path, self._upload_id, number, part
            )
        finally:
            release()
        if isinstance(part, bytearray):  # answered: nothing reads it any more
            sending = sum(not task.done() for task in self._sending)  # this one included
            self._pending.recycle(part, sending)

    def _raise_failures(self) -> None:
        """Raise the first failure among the parts answered. Every failure is read, or
        asyncio would log each as never retrieved: when the endpoint drops, all the
        parts in flight fail at once."""
        done = [task for task in self._sending if task.done()]
        self._sending.difference_update(done)
        failures = [failure for task in done if (failure := _failure(task)) is not None]
        if failures:
            raise failures[0]

    async def _drain(self) -> None:
        """Wait for every part sent; the first failure is raised."""
        if self._sending:
            await asyncio.wait(self._sending)
        self._raise_failures()

    async def _mark(self, state: str) -> None:
        """Write the marker (see :mod:`streamflow_data_s3.partial`)."""
        parts = tuple(
            (self._parts[n]["ETag"], self._parts[n]["ChecksumCRC32C"]) for n in sorted(self._parts)
        )
        suspended = state == "suspended"
        marker = Marker(
            state,
            self._upload_id,
            self._part_size,
            parts if suspended else (),
            self._pending.held() if suspended else b"",
        )
        self._marked = True
        await self._store.put(self.location, self._token, marker.encode(), {})

    async def _unmark(self) -> None:
        if self._marked:
            self._marked = False
            with contextlib.suppress(ConnectorError):
                await self._store.delete(self.location, self._token)

    async def digest(self) -> Digest:
        """The size and CRC32C of the bytes given, each request of which S3 confirmed by
        its checksum (the last part's on commit)."""
        await self._drain()
        return Digest(self._size, self._crc)

    async def _commit(self) -> None:
        store = self._store
        rest = self._pending.take_all()
        if self._upload_id is None:
            await store.put(self.location, self.path, rest, self._metadata)
        else:
            if rest or self._next_part == 1:  # S3 completes no upload without a part
                self._start(rest, await self._ready())
            await self._drain()
            parts = [self._parts[number] for number in sorted(self._parts)]
            await store.complete_upload(self.location, self.path, self._upload_id, parts)
            # The destination succeeded: uploads interrupted before it are never resumed.
            await store.discard_leftovers(self.location, self.path, self._upload_id, self._token)
        await self._unmark()

    async def _abort(self) -> None:
        for task in self._sending:
            task.cancel()
        if self._sending:
            await asyncio.wait(self._sending)
        for task in self._sending:
            _failure(task)  # read: the abort is the answer
        self._sending.clear()
        if self._upload_id is not None:
            with contextlib.suppress(ConnectorError):
                await self._store.abort_upload(self.location, self.path, self._upload_id)
        await self._unmark()

    async def _suspend(self) -> None:
        """Wait for the parts in flight, then record them and the bytes not sent yet in
        the marker; if that cannot be done, discard the upload instead."""
        try:
            await self._drain()
            await self._mark("suspended")
        except (ConnectorError, OSError):
            await self._abort()


def _failure(task: asyncio.Task[None]) -> BaseException | None:
    """What a finished part upload raised (None if it was cancelled or succeeded)."""
    return None if task.cancelled() else task.exception()
