"""Big files as byte streams: ranged reads and writes as long-running remote ``dd``.

A *lane* is one remote ``dd`` positioned at an offset. A read or write at the offset where
a lane stands continues it, so a file read or written in order costs one stream, and
chunks moved in parallel each get their own lane. An idle lane may be closed by the pool
to make room (see :mod:`streamflow_data_ssh.pool`); the next operation at its offset
reopens it there. Each lane's process is a :class:`~streamflow_data_ssh.channels.Stream`,
on the OpenSSH master or an asyncssh channel, as the pool decides; blocks go to it whole.

With ``verify = "sha256"`` each writing lane's bytes are hashed on the host as they arrive
(``tee`` into the hash tool) and compared with the hash of what we sent; the file's size is
read back before the commit renames it into place.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import posixpath
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import asyncssh

from streamflow_data.sdk import (
    ChecksumMismatchError,
    ConnectorError,
    Digest,
    ExecutionLocation,
    PathNotFoundError,
    Reader,
    SourceChangedError,
    Verification,
    Writer,
    crc32c,
    crc32c_of_pieces,
    temporary_name,
)
from streamflow_data_ssh.channels import Stream
from streamflow_data_ssh.pool import NodePool
from streamflow_data_ssh.remote import (
    EXIT_EXISTS,
    EXIT_NOT_FOUND,
    Completed,
    command_error,
    metadata_commands,
    q,
    sha256_hex,
    status_pipeline,
    translate,
)

__all__ = ["SSHReader", "SSHWriter", "identity_command"]

_BLOCK = "bs=256K status=none"
"""``dd``'s buffer on the host. Writing 1 GiB through one ``dd`` (sessions of one master,
alternated, on the 2-core benchmark machine) took 2.1 to 3.8 s with 1 MiB, 1.8 to 2.0 s
with 256 KiB, and 1.8 to 2.5 s for ``cat``; reading, 256 KiB was as fast as ``cat``."""
_HASH_LINE = re.compile(rb"^([0-9a-f]{64})\b", re.MULTILINE)
_STATUS_LINE = re.compile(rb"^dd=(\d+)$", re.MULTILINE)


@dataclass(eq=False)
class _Lane:
    """A remote process positioned at ``position``, and the operations queued on it."""

    position: int
    """Where the next operation queued on this lane starts."""
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    process: Stream | None = None
    pending: int = 0
    stack: contextlib.AsyncExitStack | None = None


class _Lanes:
    """The lanes of one open file and their channel bookkeeping with the pool."""

    def __init__(self, pool: NodePool, close_lane: Callable[[_Lane], Awaitable[None]]):
        self.pool = pool
        self.lanes: list[_Lane] = []
        self._close_lane = close_lane

    def reserve(self, offset: int, length: int) -> _Lane:
        """The lane that will run the operation at ``offset`` (a new one if none stands
        there), already moved past it."""
        lane = next((lane for lane in self.lanes if lane.position == offset), None)
        if lane is None:
            lane = _Lane(offset)
            self.lanes.append(lane)
        lane.position = offset + length
        lane.pending += 1
        if lane.process is not None:
            self.pool.mark_busy(lane.process)
        return lane

    async def done(self, lane: _Lane) -> None:
        """The operation reserved on ``lane`` ended; an unused lane becomes idle."""
        lane.pending -= 1
        if lane.pending == 0 and lane.process is not None:
            await self.pool.mark_idle(lane.process, lambda: self.evict(lane))

    async def evict(self, lane: _Lane) -> None:
        async with lane.lock:
            if lane.pending == 0:
                await self.shut(lane)

    async def start(self, lane: _Lane, command: str) -> Stream:
        stack = contextlib.AsyncExitStack()
        try:
            process = await stack.enter_async_context(self.pool.stream(command))
        except BaseException:
            await stack.aclose()
            raise
        lane.process, lane.stack = process, stack
        return process

    async def shut(self, lane: _Lane) -> None:
        """Close the lane's process (as the owner says) and give its channel back."""
        if lane.process is None:
            return
        self.pool.mark_busy(lane.process)
        try:
            await self._close_lane(lane)
        finally:
            lane.process = None
            stack, lane.stack = lane.stack, None
            if stack is not None:
                await stack.aclose()

    async def shut_all(self) -> None:
        for lane in self.lanes:
            async with lane.lock:
                await self.shut(lane)


def identity_command(path: str) -> str:
    """A command printing what the file at ``path`` is now: device, inode, size,
    modification and change times (as ``find`` sees them, links followed)."""
    return f"find -L {q(path)} -maxdepth 0 -printf '%D %i %s %T@ %C@'"


class SSHReader(Reader):
    """Ranged reads of one remote file."""

    def __init__(self, pool: NodePool, path: str, identity: bytes) -> None:
        self.pool = pool
        self.path = path
        self._identity = identity
        """What :func:`identity_command` printed when the file was opened."""
        self._lanes = _Lanes(pool, self._stop)

    async def changed(self) -> str | None:
        """By the file's device, inode, size and times on the host, asked anew (one round
        trip, no cached answer)."""
        try:
            now = await self.pool.check(identity_command(self.path), self.path)
        except PathNotFoundError:
            return "it was removed while it was read"
        if now == self._identity:
            return None
        before, after = self._identity.split(), now.split()
        if before[:2] != after[:2]:
            return "another file replaced it while it was read"
        if before[2:3] != after[2:3]:
            return f"its size went from {before[2].decode()} to {after[2].decode()} bytes"
        return "it was written to while it was read"

    async def read(self, offset: int, size: int) -> bytes:
        buffer = bytearray(size)
        got = await self.readinto(offset, memoryview(buffer))
        return bytes(buffer[:got])

    async def readinto(self, offset: int, buffer: memoryview) -> int:
        lane = self._lanes.reserve(offset, len(buffer))
        try:
            async with lane.lock:
                got = await self._fill(lane, offset, buffer)
                if got < len(buffer):
                    lane.position = offset + got
                return got
        finally:
            await self._lanes.done(lane)

    async def _fill(self, lane: _Lane, offset: int, buffer: memoryview) -> int:
        location = self.pool.location
        try:
            process = lane.process
            if process is None:
                skip = f" iflag=skip_bytes skip={offset}" if offset else ""
                process = await self._lanes.start(lane, f"dd if={q(self.path)} {_BLOCK}{skip}")
            got = 0
            while got < len(buffer):
                count = await process.receive_into(buffer[got:])
                if not count:
                    result = await process.finish()
                    await self._lanes.shut(lane)
                    if result.status != 0:
                        raise command_error(result, location, self.path, "dd")
                    break
                got += count
            return got
        except (asyncssh.Error, OSError) as exc:
            await self._lanes.shut(lane)
            raise translate(exc, location, self.path) from exc

    @property
    def writes_local_files(self) -> bool:  # type: ignore[override]  # a flag, computed here
        """On the OpenSSH master, ``ssh`` writes the bytes into the local file itself,
        without passing them through this process (:meth:`read_local`); not with
        ``verify = "sha256"``, which asks for every byte to be checked: through this
        process, each block's CRC32C is compared with what the local file stored."""
        return self.pool.uses_openssh and self.pool.options.verify == "none"

    async def read_local(
        self, offset: int, size: int, path: str, progress: Callable[[int], None]
    ) -> int:
        """One session of its own: ``dd`` reads the range, which the OpenSSH master writes
        into the file itself (asyncssh's output is written from here when the master is
        full). How far the file's offset, which the master moves, has gone is the
        progress; where it stops, the count."""
        location = self.pool.location
        fd = await asyncio.to_thread(os.open, path, os.O_WRONLY)
        reported = _Reported(fd, offset, size, progress)
        try:
            os.lseek(fd, offset, os.SEEK_SET)
            async with self.pool.stream(
                _range_command(self.path, offset, size), stdout=fd
            ) as process:
                try:
                    async with reported.polling():
                        await process.pour(fd)
                        result = await process.finish()
                except BaseException:
                    await process.stop()
                    raise
            got = os.lseek(fd, 0, os.SEEK_CUR) - offset
        except (asyncssh.Error, OSError) as exc:
            raise translate(exc, location, self.path) from exc
        finally:
            os.close(fd)
        if result.status != 0:
            raise command_error(result, location, self.path, "dd")
        reported.up_to(got)
        return got

    async def _stop(self, lane: _Lane) -> None:
        assert lane.process is not None
        await lane.process.stop()

    async def close(self) -> None:
        await self._lanes.shut_all()


@dataclass(slots=True)
class _LaneRun:
    """Bytes sent through one lane's process, contiguous from ``start``."""

    start: int
    end: int
    sha256: hashlib._Hash = field(default_factory=hashlib.sha256)
    result: Completed | None = None


class SSHWriter(Writer):
    """A remote file written under a temporary name, renamed into place on commit."""

    def __init__(
        self,
        pool: NodePool,
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
        self.pool = pool
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
        self._lanes = _Lanes(pool, self._end_run)
        self._runs: dict[_Lane, _LaneRun] = {}
        self._finished_runs: list[_LaneRun] = []
        self._pieces: dict[int, tuple[int, int]] = {}  # offset -> (length, crc32c)
        self._error: ConnectorError | None = None
        self._settled: tuple[int, int] | None = None
        self._stored: int | None = None
        """The file's size on the host once every lane has ended, when asked already."""

    @classmethod
    async def create(cls, pool: NodePool, writer: SSHWriter) -> SSHWriter:
        """Create the (empty) file after checking its directory: one round trip.

        The file is created with no permission its final mode lacks (but the owner's read
        and write, for the writes to come), so that a private file is never readable by
        others in transit, nor after a failed transfer leaves it.
        """
        parent = posixpath.dirname(writer.path) or "/"
        steps = [f"[ -d {q(parent)} ] || exit {EXIT_NOT_FOUND}"]
        if not writer.atomic:
            steps.append(f"[ -e {q(writer.path)} ] && exit {EXIT_EXISTS}")
        if writer.mode is not None:
            steps.append(f"umask {0o777 & ~(writer.mode | 0o600):03o}")
        steps.append(f": > {q(writer.written)}")
        await pool.check("; ".join(steps), writer.path)
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

    async def _send(self, lane: _Lane, offset: int, payload: memoryview) -> None:
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
        except (asyncssh.Error, OSError) as exc:
            error = await self._failure(process, exc)
            await self._lanes.shut(lane)
            raise error from exc
        run.end = offset + len(payload)
        self._pieces[offset] = (len(payload), checksum)

    async def _failure(self, process: Stream | None, exc: Exception) -> ConnectorError:
        """The error for a failed write: what the host says (a full disk), if it says
        something before hanging up, else the transport's failure."""
        error = translate(exc, self.location, self.path)
        if process is not None:
            with contextlib.suppress(asyncssh.Error, OSError):
                result = await asyncio.wait_for(process.finish(), 5)
                if result.stderr:
                    error = command_error(result, self.location, self.path, "dd")
        return error

    def _command(self, offset: int, size: int | None = None) -> str:
        seek = f" oflag=seek_bytes seek={offset}" if offset else ""
        count = "" if size is None else f" iflag=fullblock,count_bytes count={size}"
        dd = f"dd of={q(self.written)} conv=notrunc {_BLOCK}{seek}{count}"
        return status_pipeline(dd, "dd", self._hash_command)

    @property
    def reads_local_files(self) -> bool:  # type: ignore[override]  # a flag, computed here
        """On the OpenSSH master, a local file goes to ``ssh`` without passing through
        this process (:meth:`write_local`); not with ``verify = "sha256"``, which hashes
        the bytes sent here."""
        return self._hash_command is None and self.pool.uses_openssh

    async def write_local(
        self,
        offset: int,
        path: str,
        size: int,
        crc: Awaitable[int],
        progress: Callable[[int], None],
    ) -> None:
        """One session of its own: ``dd`` writes the range, which the OpenSSH master reads
        from the file itself (asyncssh gets it from here when the master is full). How far
        the file's offset, which the master moves, has gone is the progress."""
        if self._error is not None:
            raise self._error
        # ssh reads the file itself: the CRC32C counted for these bytes is the source's,
        # read here meanwhile, so the stored size is all that is compared of them.
        self.verification = Verification.SIZE
        fd = await asyncio.to_thread(os.open, path, os.O_RDONLY)
        reported = _Reported(fd, offset, size, progress)
        try:
            os.lseek(fd, offset, os.SEEK_SET)
            async with self.pool.stream(self._command(offset, size), stdin=fd) as process:
                try:
                    async with reported.polling():
                        await process.feed(fd, size)
                        result = await process.finish()
                except EOFError as exc:
                    await process.stop()
                    raise self._ended(path, exc) from exc
                except (asyncssh.Error, OSError) as exc:
                    raise await self._failure(process, exc) from exc
                except BaseException:
                    await process.stop()
                    raise
        except (asyncssh.Error, OSError) as exc:  # the session did not open
            raise translate(exc, self.location, self.path) from exc
        finally:
            os.close(fd)
        self._check_run(_LaneRun(offset, offset + size), result)
        self._pieces[offset] = (size, await crc)
        reported.up_to(size)

    def _ended(self, path: str, exc: EOFError) -> ConnectorError:
        return SourceChangedError(self.location, self.path, f"the local file {path!r}: {exc}")

    async def _end_run(self, lane: _Lane) -> None:
        process = lane.process
        run = self._runs.pop(lane, None)
        assert process is not None
        try:
            result = await process.finish()
        except (asyncssh.Error, OSError) as exc:
            self._error = self._error or translate(exc, self.location, self.path)
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
        try:
            async with self.pool.stream(_range_command(self.written, offset, size)) as process:
                while got < size:
                    count = await process.receive_into(buffer)
                    if not count:
                        break
                    value = await asyncio.to_thread(crc32c, buffer[:count], value)
                    got += count
                result = await process.finish()
        except (asyncssh.Error, OSError) as exc:
            raise translate(exc, self.location, self.path) from exc
        if result.status != 0 or got != size:
            detail = f"read back {got} of {size} bytes at {offset}: {result.stderr.strip()}"
            raise ChecksumMismatchError(self.location, self.path, detail)
        return value

    async def _stored_size(self) -> int:
        """The file's size on the host (asked once: the lanes have ended)."""
        if self._stored is None:
            output = await self.pool.check(f"stat -L -c %s -- {q(self.written)}", self.path)
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
        await self._settle()
        commands = metadata_commands(self.written, self.mode, self.mtime_ns)
        if self.atomic:
            commands.append(f"mv -fT -- {q(self.written)} {q(self.path)}")
        try:
            if commands:
                await self.pool.check(" && ".join(commands), self.path)
        finally:
            if self._published is not None:
                self._published()

    async def _abort(self) -> None:
        with contextlib.suppress(ConnectorError):
            await self._lanes.shut_all()
            await self.pool.check(f"rm -f -- {q(self.written)}", self.path)

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
        read = f"dd if={q(self.written)} iflag=skip_bytes skip={start} {_BLOCK}"
        command = f"{read} | split -b {piece} --filter=sha256sum"
        output = await self.pool.check(command, self.path, what="sha256sum")
        digests = []
        for line in output.splitlines():
            digest = sha256_hex(line.split(maxsplit=1)[0] if line.strip() else b"")
            if digest is None:
                break  # not what sha256sum prints: trust none of the rest
            digests.append(bytes.fromhex(digest))
        return digests


@dataclass(slots=True)
class _Reported:
    """Progress of a range of a local file read by another process, from the offset of
    the file (which that process shares and moves)."""

    fd: int
    start: int
    size: int
    progress: Callable[[int], None]
    """Told each further number of bytes done."""
    done: int = 0

    def up_to(self, done: int) -> None:
        if done > self.done:
            self.progress(done - self.done)
            self.done = done

    @contextlib.asynccontextmanager
    async def polling(self) -> AsyncIterator[None]:
        """Report every tenth of a second while the block runs."""

        async def poll() -> None:
            while True:
                await asyncio.sleep(0.1)
                position = os.lseek(self.fd, 0, os.SEEK_CUR)
                self.up_to(min(max(position - self.start, 0), self.size))

        task = asyncio.create_task(poll())
        try:
            yield
        finally:
            task.cancel()
            await asyncio.wait([task])


def _range_command(path: str, offset: int, size: int) -> str:
    """``dd`` printing ``size`` bytes of the remote file ``path`` from ``offset`` (fewer at
    its end)."""
    return f"dd if={q(path)} {_BLOCK} iflag=skip_bytes,count_bytes skip={offset} count={size}"


def _hash_piece(sha256: hashlib._Hash | None, payload: memoryview) -> int:
    """Feed the run's hash and return the CRC32C of ``payload`` (off the event loop)."""
    if sha256 is not None:
        sha256.update(payload)
    return crc32c(payload)
