"""An open file: :class:`Reader` for ranged reads, :class:`Writer` for writes that appear
at their path only when committed. Connectors return them (see
:mod:`~streamflow_data.connectors.base`); the transfer engine moves blocks between them,
or hands a connector's own route the whole file (``put_file``/``get_file``).
"""

from __future__ import annotations

import abc
from types import TracebackType
from typing import Self

from streamflow_data.errors import ChecksumMismatchError
from streamflow_data.model import Digest, ExecutionLocation, Verification

__all__ = ["Reader", "Writer"]


class Reader(abc.ABC):
    """An open file to read ranges from. Use as an async context manager.

    Reads at different offsets may run concurrently (chunks of one file are read in
    parallel).
    """

    @abc.abstractmethod
    async def read(self, offset: int, size: int) -> bytes:
        """Read up to ``size`` bytes at ``offset``; fewer only at the end of the file."""

    async def readinto(self, offset: int, buffer: memoryview) -> int:
        """Fill ``buffer`` from ``offset``; returns the bytes read (fewer only at the end).

        Derived from :meth:`read`; override it to read without a copy.
        """
        data = await self.read(offset, len(buffer))
        buffer[: len(data)] = data
        return len(data)

    @property
    def local_file(self) -> str | None:
        """The file of this machine the reader reads, which a destination's own route may
        read itself (see :meth:`Connector.put_file
        <streamflow_data.connectors.base.Connector.put_file>`); None (the default) for
        storage elsewhere."""
        return None

    @property
    def opened_size(self) -> int | None:
        """The file's size when it was opened, where the storage tells it (None, the
        default, where it does not). With :meth:`changed`, which then compares against
        it, the engine knows whether the file grew without reading past its end."""
        return None

    async def changed(self) -> str | None:
        """Why the file is no longer the one opened (rewritten in place, replaced, resized),
        else None; the engine asks after its last read of a file and before publishing a
        copy of it, so that a file changed meanwhile is never published torn. The default,
        None, is for storage that cannot tell (its size is still checked)."""
        return None

    @abc.abstractmethod
    async def close(self) -> None:
        """Release the file."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()


class Writer(abc.ABC):
    """A file being written: invisible at its path until :meth:`commit`.

    Use as an async context manager: leaving the block without a commit (an error, a
    cancellation) discards everything written, so no partly written file is ever seen at
    the destination path.
    """

    def __init__(self, location: ExecutionLocation, path: str) -> None:
        self.location = location
        """The location written to."""
        self.path = path
        """The final path the file appears at on commit."""
        self._finished = False

    @abc.abstractmethod
    async def write(self, offset: int, data: bytes | memoryview) -> None:
        """Write ``data`` at ``offset``.

        Without :attr:`Capabilities.ranged_writes`, offsets must follow each other.
        """

    @property
    def local_file(self) -> str | None:
        """The file of this machine the bytes go to until the commit, which a source's
        own route may fill (see :meth:`Connector.get_file
        <streamflow_data.connectors.base.Connector.get_file>`); None (the default) for
        storage elsewhere."""
        return None

    in_flight = 0
    """Bytes :meth:`write` may have returned for that are still on their way to the
    storage (in a pipe, a channel window, sockets), and would be lost with this process:
    the journal records a file's progress that far behind what was written, so that a
    run killed meanwhile is never resumed from bytes the storage does not hold."""

    verification = Verification.SENT
    """What :meth:`digest` proves of the stored bytes. The default is what a digest of the
    bytes given to :meth:`write` proves; a writer that reads them back, or whose storage
    checks them as it receives them, says so (a class or an instance attribute)."""

    @abc.abstractmethod
    async def digest(self) -> Digest:
        """The size and CRC32C of the bytes written, known as :attr:`verification` says:
        by the cheapest route the storage trusts (reading the temporary file back, a
        remote command, a checksum the storage verified as it received the bytes)."""

    @abc.abstractmethod
    async def _commit(self) -> None:
        """Publish the written bytes at :attr:`path`, atomically replacing a file there."""

    @abc.abstractmethod
    async def _abort(self) -> None:
        """Discard the written bytes."""

    @property
    def resume_token(self) -> str | None:
        """What :meth:`Connector.resume_writer` needs to continue this file after a crash.

        None (the default) when the storage cannot keep a partly written file: a transfer
        interrupted there starts that file from zero.
        """
        return None

    async def held_digests(self, start: int, piece: int) -> list[bytes]:
        """SHA-256 digests of the file this writer continues (see :attr:`resume_token`), in
        runs of ``piece`` bytes from offset ``start`` to its end (the last run may be
        shorter). A run killed before it recorded its last writes left more than its
        journal says; the engine compares these with the source's bytes and does not send
        again what the file already holds. The default, no digest, is for storage that
        cannot tell without moving the bytes back."""
        return []

    async def suspend(self) -> None:
        """Stop writing but keep the bytes written so far for a later
        :meth:`Connector.resume_writer`; nothing appears at :attr:`path`.

        Writers without a :attr:`resume_token` discard the bytes, as :meth:`abort` does.
        """
        if self.resume_token is None:
            await self.abort()
            return
        if not self._finished:
            self._finished = True
            await self._suspend()

    async def _suspend(self) -> None:
        """Release what the writer holds, keeping the partial file; required with a token."""
        raise NotImplementedError

    async def commit(self, expected: Digest | None = None) -> None:
        """Make the file appear at its path, complete, with the requested mode and time.

        With ``expected``, the stored bytes are checked against it first and
        :class:`ChecksumMismatchError` is raised on a difference. A failed commit discards
        the file, as :meth:`abort` does, and re-raises.
        """
        try:
            if expected is not None:
                actual = await self.digest()
                if actual != expected:
                    raise ChecksumMismatchError(
                        self.location, self.path, f"expected {expected}, stored {actual}"
                    )
            await self._commit()
        except BaseException:
            await self.abort()
            raise
        self._finished = True

    async def abort(self) -> None:
        """Discard the file; nothing appears at its path. Safe to call more than once."""
        if not self._finished:
            self._finished = True
            await self._abort()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.abort()
