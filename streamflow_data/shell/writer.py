"""Ranged writes of a big file on a host, through the lanes of :mod:`.lanes`.

With a hash command (the connector's ``verify``) each writing lane's bytes are hashed on
the host as they arrive (``tee`` into the hash tool) and compared with the hash of what we
sent; the file's size is read back before the commit renames it into place.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import posixpath
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from streamflow_data.checksum import crc32c, crc32c_of_pieces
from streamflow_data.connectors.openfiles import Writer
from streamflow_data.errors import ChecksumMismatchError, ConnectorError, SourceChangedError
from streamflow_data.location import ExecutionLocation
from streamflow_data.model import Digest, Verification, temporary_name
from streamflow_data.shell.commands import (
    EXIT_EXISTS,
    EXIT_NOT_FOUND,
    Completed,
    command_error,
    metadata_commands,
    quote,
    sha256_hex,
    status_pipeline,
)
from streamflow_data.shell.lanes import (
    READ_BLOCK,
    WRITE_BLOCK,
    Lane,
    Lanes,
    Reported,
    local_error,
    open_local,
    range_command,
)
from streamflow_data.shell.transport import CommandTransport, Stream

__all__ = ["IN_FLIGHT", "ShellWriter"]

_HASH_LINE = re.compile(rb"^([0-9a-f]{64})\b", re.MULTILINE)
_STATUS_LINE = re.compile(rb"^dd=(\d+)$", re.MULTILINE)


@dataclass(slots=True)
class _LaneRun:
    """Bytes sent through one lane's process, contiguous from ``start``."""

    start: int
    end: int
    sha256: hashlib._Hash = field(default_factory=hashlib.sha256)
    result: Completed | None = None


IN_FLIGHT = 16 * 1024 * 1024
"""Bytes of a write to the host taken to be on their way, not yet held by it, once the
stream has taken them: what a channel window, the sockets and the pipe to ``dd`` can
hold (see :attr:`~streamflow_data.connectors.openfiles.Writer.in_flight`)."""


class ShellWriter(Writer):
    """A file on the host written under a temporary name, renamed into place on commit."""

    in_flight = IN_FLIGHT

    def __init__(
        self,
        transport: CommandTransport,
        location: ExecutionLocation,
        path: str,
        *,
        mode: int | None,
        mtime_ns: int | None,
        atomic: bool,
        hash_command: str | None,
        published: Callable[[], None] | None = None,
        resumed: str | None = None,
    ) -> None:
        super().__init__(location, path)
        self.transport = transport
        self._published = published
        """Told when the file appears at its path (the connector forgets its metadata)."""
        self.mode, self.mtime_ns, self.atomic = mode, mtime_ns, atomic
        self.written = resumed or (temporary_name(path) if atomic else path)
        self._resumed = resumed is not None
        """Whether the file holds bytes an earlier writer sent (see :meth:`_read_back`)."""
        self._hash_command = hash_command
        self.verification = Verification.SENT if hash_command is None else Verification.RECEIVED
        """The host hashes what it receives with ``verify = "sha256"``; else the bytes
        sent here are checksummed (and the stored size compared)."""
        self._lanes = Lanes(transport, path, self._end_run)
        self._runs: dict[Lane, _LaneRun] = {}
        self._finished_runs: list[_LaneRun] = []
        self._pieces: dict[int, tuple[int, int]] = {}  # offset -> (length, crc32c)
        self._error: ConnectorError | None = None
        self._settled: tuple[int, int] | None = None
        self._stored: int | None = None
        """The file's size on the host once every lane has ended, when asked already."""

    @classmethod
    async def create(cls, writer: ShellWriter) -> ShellWriter:
        """Create the (empty) file after checking its directory: one round trip.

        The file is created with no permission its final mode lacks (but the owner's read
        and write, for the writes to come), so that a private file is never readable by
        others in transit, nor after a failed transfer leaves it.
        """
        parent = posixpath.dirname(writer.path) or "/"
        steps = [f"[ -d {quote(parent)} ] || exit {EXIT_NOT_FOUND}"]
        if not writer.atomic:
            steps.append(f"[ -e {quote(writer.path)} ] && exit {EXIT_EXISTS}")
        if writer.mode is not None:
            steps.append(f"umask {0o777 & ~(writer.mode | 0o600):03o}")
        steps.append(f": > {quote(writer.written)}")
        await writer.transport.check("; ".join(steps), writer.path)
        return writer

    async def write(self, offset: int, data: bytes | memoryview) -> None:
        if not len(data):
            return
        payload = memoryview(data)
        lane = self._lanes.reserve(offset, len(payload))
        try:
            async with lane.lock:
                await self._send(lane, offset, payload)
        finally:
            await self._lanes.done(lane)

    async def _send(self, lane: Lane, offset: int, payload: memoryview) -> None:
        if self._error is not None:
            raise self._error
        process = lane.process
        run = self._runs.get(lane)
        try:
            if process is None or run is None:
                process = await self._lanes.start(lane, self._command(offset))
                run = self._runs[lane] = _LaneRun(offset, offset)
            hashed = run.sha256 if self._hash_command is not None else None
            checksum = await asyncio.to_thread(_hash_piece, hashed, payload)
            await process.send(payload)
        except ConnectorError as exc:
            error = await self._failure(process, exc)
            await self._lanes.shut(lane)
            raise error from exc
        run.end = offset + len(payload)
        self._pieces[offset] = (len(payload), checksum)

    async def _failure(self, process: Stream | None, error: ConnectorError) -> ConnectorError:
        """The error for a failed write: what the host says (a full disk), if it says
        something before hanging up, else the transport's failure."""
        if process is not None:
            with contextlib.suppress(ConnectorError, TimeoutError):
                result = await asyncio.wait_for(process.finish(), 5)
                if result.stderr:
                    error = command_error(result, self.location, self.path, "dd")
        return error

    def _command(self, offset: int, size: int | None = None) -> str:
        seek = f" oflag=seek_bytes seek={offset}" if offset else ""
        count = "" if size is None else f" iflag=fullblock,count_bytes count={size}"
        dd = f"dd of={quote(self.written)} conv=notrunc {WRITE_BLOCK}{seek}{count}"
        return status_pipeline(dd, "dd", self._hash_command)

    @property
    def hands_over(self) -> bool:
        """Whether a local file goes to the transport's process without passing through
        this process (:meth:`write_local`); not when the host hashes what it receives,
        which needs the bytes hashed here as they are sent."""
        return self._hash_command is None and self.transport.hands_over_files

    async def write_local(
        self,
        offset: int,
        path: str,
        size: int,
        crc: Awaitable[int],
        progress: Callable[[int], None],
    ) -> None:
        """One stream of its own: ``dd`` writes the range, which the transport reads from
        the file (see :meth:`~streamflow_data.shell.transport.Stream.feed`). How far the
        file's offset, which the reading process moves, has gone is the progress."""
        if self._error is not None:
            raise self._error
        # Another process reads the file: the CRC32C counted for these bytes is the
        # source's, read here meanwhile, so the stored size is all that is compared of them.
        self.verification = Verification.SIZE
        fd = await open_local(self.location, path, os.O_RDONLY)
        reported = Reported(fd, offset, size, progress)
        try:
            os.lseek(fd, offset, os.SEEK_SET)
            command = self._command(offset, size)
            async with self.transport.stream(command, self.path, stdin=fd) as process:
                try:
                    async with reported.polling():
                        await process.feed(fd, size)
                        result = await process.finish()
                except EOFError as exc:
                    await process.stop()
                    raise self._ended(path, exc) from exc
                except ConnectorError as exc:
                    raise await self._failure(process, exc) from exc
                except BaseException:
                    await process.stop()
                    raise
        except OSError as exc:
            raise local_error(exc, self.location, path) from exc
        finally:
            os.close(fd)
        self._check_run(_LaneRun(offset, offset + size), result)
        reported.up_to(size)  # before the CRC32C, whose reading waits for the transport's
        self._pieces[offset] = (size, await crc)

    def _ended(self, path: str, exc: EOFError) -> ConnectorError:
        return SourceChangedError(self.location, self.path, f"the local file {path!r}: {exc}")

    async def _end_run(self, lane: Lane) -> None:
        process = lane.process
        run = self._runs.pop(lane, None)
        assert process is not None
        try:
            result = await process.finish()
        except ConnectorError as exc:
            self._error = self._error or exc
            return
        if run is not None:
            run.result = result
            self._finished_runs.append(run)

    async def _settle(self) -> tuple[int, int]:
        """End every lane and check what each run's process reported; the size and CRC32C
        of the bytes sent. Done once: a verified commit settles in ``digest`` first."""
        if self._settled is None:
            await self._lanes.shut_all()
            if self._error is not None:
                raise self._error
            for run in self._finished_runs:
                assert run.result is not None
                self._check_run(run, run.result)
            if self._resumed:
                await self._read_back()
            self._settled = self._tiled()
        return self._settled

    async def _read_back(self) -> None:
        """Checksum, reading them back from the host, the bytes of the file this writer
        did not send (an earlier writer's): it only knows the CRC32C of its own."""
        stored, position = await self._stored_size(), 0
        for offset in [*sorted(self._pieces), stored]:
            if offset > position:
                size = offset - position
                self._pieces[position] = (size, await self._remote_crc(position, size))
            if offset < stored:
                position = max(position, offset + self._pieces[offset][0])

    async def _remote_crc(self, offset: int, size: int) -> int:
        """The CRC32C of ``size`` bytes of the file from ``offset``, as the host holds them."""
        buffer = memoryview(bytearray(1 << 20))
        value = got = 0
        command = range_command(self.written, offset, size)
        async with self.transport.stream(command, self.path) as process:
            while got < size:
                count = await process.receive_into(buffer)
                if not count:
                    break
                value = await asyncio.to_thread(crc32c, buffer[:count], value)
                got += count
            result = await process.finish()
        if result.status != 0 or got != size:
            detail = f"read back {got} of {size} bytes at {offset}: {result.stderr.strip()}"
            raise ChecksumMismatchError(self.location, self.path, detail)
        return value

    async def _stored_size(self) -> int:
        """The file's size on the host (asked once: the lanes have ended)."""
        if self._stored is None:
            output = await self.transport.check(
                f"stat -L -c %s -- {quote(self.written)}", self.path
            )
            self._stored = int(output.split()[0])
        return self._stored

    async def digest(self) -> Digest:
        size, crc = await self._settle()
        stored = await self._stored_size()
        if stored != size:
            raise ChecksumMismatchError(self.location, self.path, f"sent {size}, stored {stored}")
        return Digest(size, crc)

    def _check_run(self, run: _LaneRun, result: Completed) -> None:
        status = _STATUS_LINE.search(result.stdout)
        if status is None or int(status.group(1)) != 0 or result.status != 0:
            raise command_error(
                Completed(int(status.group(1)) if status else result.status, b"", result.stderr),
                self.location,
                self.path,
                "dd",
            )
        if self._hash_command is None:
            return
        remote = _HASH_LINE.search(result.stdout)
        if remote is None or remote.group(1).decode() != run.sha256.hexdigest():
            detail = f"bytes {run.start}-{run.end} hashed differently on the host"
            raise ChecksumMismatchError(self.location, self.path, detail)

    def _tiled(self) -> tuple[int, int]:
        """The size and CRC32C of the bytes sent, which must cover the file without gaps
        (a block rewritten after a retry has the same offset)."""
        size = max((offset + length for offset, (length, _) in self._pieces.items()), default=0)
        crc = crc32c_of_pieces(self._pieces, size)
        if crc is None:
            detail = f"the {size} bytes written do not tile the file"
            raise ChecksumMismatchError(self.location, self.path, detail)
        return size, crc

    async def _commit(self) -> None:
        """Publish; a file that got ranges another process read is checked by its stored
        size here, whether or not the commit was given a digest (see :meth:`write_local`)."""
        if self.verification is Verification.SIZE:
            await self.digest()
        else:
            await self._settle()
        commands = metadata_commands(self.written, self.mode, self.mtime_ns)
        if self.atomic:
            commands.append(f"mv -fT -- {quote(self.written)} {quote(self.path)}")
        try:
            if commands:
                await self.transport.check(" && ".join(commands), self.path)
        finally:
            if self._published is not None:
                self._published()

    async def _abort(self) -> None:
        with contextlib.suppress(ConnectorError):
            await self._lanes.shut_all()
            await self.transport.check(f"rm -f -- {quote(self.written)}", self.path)

    @property
    def resume_token(self) -> str:
        """The partial file's name on the host (a temporary one when atomic)."""
        return self.written

    async def _suspend(self) -> None:
        with contextlib.suppress(ConnectorError):
            await self._lanes.shut_all()

    async def held_digests(self, start: int, piece: int) -> list[bytes]:
        """Hashed on the host, one ``sha256sum`` per run (``split --filter``): only the
        digests cross the network. Nothing for a file this writer started."""
        if not self._resumed:
            return []
        read = f"dd if={quote(self.written)} iflag=skip_bytes skip={start} {READ_BLOCK}"
        command = f"{read} | split -b {piece} --filter=sha256sum"
        output = await self.transport.check(command, self.path, what="sha256sum")
        digests = []
        for line in output.splitlines():
            digest = sha256_hex(line.split(maxsplit=1)[0] if line.strip() else b"")
            if digest is None:
                break  # not what sha256sum prints: trust none of the rest
            digests.append(bytes.fromhex(digest))
        return digests


def _hash_piece(sha256: hashlib._Hash | None, payload: memoryview) -> int:
    """Feed the run's hash and return the CRC32C of ``payload`` (off the event loop)."""
    if sha256 is not None:
        sha256.update(payload)
    return crc32c(payload)
