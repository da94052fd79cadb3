"""Ranged reads of a big file on a host, through the lanes of :mod:`.lanes`."""

from __future__ import annotations

import os
from collections.abc import Callable

from streamflow_data.connectors.openfiles import Reader
from streamflow_data.errors import ConnectorError, PathNotFoundError
from streamflow_data.shell.commands import command_error, quote
from streamflow_data.shell.lanes import (
    READ_BLOCK,
    Lane,
    Lanes,
    Reported,
    local_error,
    open_local,
    range_command,
)
from streamflow_data.shell.transport import CommandTransport

__all__ = ["ShellReader", "identity_command"]


def identity_command(path: str) -> str:
    """A command printing what the file at ``path`` is now: device, inode, size,
    modification and change times (as ``find`` sees them, links followed)."""
    return f"find -L {quote(path)} -maxdepth 0 -printf '%D %i %s %T@ %C@'"


class ShellReader(Reader):
    """Ranged reads of one file on the host."""

    def __init__(
        self, transport: CommandTransport, path: str, identity: bytes, *, checked: bool
    ) -> None:
        self.transport = transport
        self.path = path
        self._identity = identity
        """What :func:`identity_command` printed when the file was opened."""
        self._checked = checked
        """Whether every byte read must pass through this process to be checked."""
        self._lanes = Lanes(transport, path, self._stop)

    @property
    def opened_size(self) -> int:
        """As the host said when the file was opened (see :func:`identity_command`)."""
        return int(self._identity.split()[2])

    async def changed(self) -> str | None:
        """By the file's device, inode, size and times on the host, asked anew (one round
        trip, no cached answer)."""
        try:
            now = await self.transport.check(identity_command(self.path), self.path)
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

    async def _fill(self, lane: Lane, offset: int, buffer: memoryview) -> int:
        try:
            process = lane.process
            if process is None:
                skip = f" iflag=skip_bytes skip={offset}" if offset else ""
                command = f"dd if={quote(self.path)} {READ_BLOCK}{skip}"
                process = await self._lanes.start(lane, command)
            got = 0
            while got < len(buffer):
                count = await process.receive_into(buffer[got:])
                if not count:
                    result = await process.finish()
                    await self._lanes.shut(lane)
                    if result.status != 0:
                        raise command_error(result, self.transport.location, self.path, "dd")
                    break
                got += count
            return got
        except ConnectorError:
            await self._lanes.shut(lane)
            raise

    @property
    def pours(self) -> bool:
        """Whether a local destination is written straight from a stream
        (:meth:`read_local`), past the engine's blocks; not when every byte must be
        checked: then each block's CRC32C is compared with what the local file stored."""
        return not self._checked

    async def read_local(
        self, offset: int, size: int, path: str, progress: Callable[[int], None]
    ) -> int:
        """One stream of its own: ``dd`` reads the range, which the stream pours into the
        file (see :meth:`~streamflow_data.shell.transport.Stream.pour`): the transport's
        process itself where it hands files over, else this process, as the bytes come.
        How far the file's offset, which the writing moves, has gone is the progress;
        where it stops, the count."""
        location = self.transport.location
        fd = await open_local(location, path, os.O_WRONLY)
        reported = Reported(fd, offset, size, progress)
        try:
            os.lseek(fd, offset, os.SEEK_SET)
            async with self.transport.stream(
                range_command(self.path, offset, size), self.path, stdout=fd
            ) as process:
                try:
                    async with reported.polling():
                        await process.pour(fd)
                        result = await process.finish()
                except BaseException:
                    await process.stop()
                    raise
            got = os.lseek(fd, 0, os.SEEK_CUR) - offset
        except OSError as exc:
            raise local_error(exc, location, path) from exc
        finally:
            os.close(fd)
        if result.status != 0:
            raise command_error(result, location, self.path, "dd")
        reported.up_to(got)
        return got

    async def _stop(self, lane: Lane) -> None:
        assert lane.process is not None
        await lane.process.stop()

    async def close(self) -> None:
        await self._lanes.shut_all()
