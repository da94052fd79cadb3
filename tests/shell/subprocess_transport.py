"""A second transport for the shell connector: commands run as local subprocesses.

It proves that :class:`~streamflow_data.shell.ShellConnector` needs of a transport only
what :class:`~streamflow_data.shell.CommandTransport` asks (the conformance suite runs on
it unchanged), and shows a plugin author the whole of one.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
from collections.abc import AsyncIterator, Sequence

from streamflow_data import ExecutionLocation, LocationUnreachableError, UnknownLocationError
from streamflow_data.shell import (
    Buffer,
    CommandTransport,
    Completed,
    ShellConnector,
    Stream,
    in_c_locale,
    wire,
)

__all__ = ["ProcessStream", "SubprocessConnector", "SubprocessTransport"]

Process = asyncio.subprocess.Process


class ProcessStream(Stream):
    """A local ``sh -c`` process; a local file handed to it is its input or output."""

    def __init__(self, process: Process, location: ExecutionLocation, path: str) -> None:
        self._process = process
        self._location, self._path = location, path

    def _lost(self, exc: OSError) -> LocationUnreachableError:
        return LocationUnreachableError(self._location, self._path, f"the shell went: {exc}")

    async def send_pieces(self, pieces: Sequence[Buffer]) -> None:
        assert self._process.stdin is not None
        try:
            for piece in pieces:
                self._process.stdin.write(bytes(piece))
            await self._process.stdin.drain()
        except OSError as exc:
            raise self._lost(exc) from exc

    async def receive_into(self, buffer: memoryview) -> int:
        assert self._process.stdout is not None
        data = await self._process.stdout.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    async def feed(self, fd: int, size: int) -> None:
        """Nothing to do: the process reads the file itself (see :meth:`.stream`)."""

    async def pour(self, fd: int) -> None:
        """Nothing to do: the process writes the file itself."""

    async def finish(self) -> Completed:
        process = self._process
        if process.stdin is not None:
            process.stdin.close()
        rest = await process.stdout.read() if process.stdout is not None else b""
        assert process.stderr is not None
        stderr = await process.stderr.read()
        status = await process.wait()
        return Completed(status, rest, stderr.decode(errors="replace"))

    async def stop(self) -> None:
        """Kill the command's processes (its own group); read its pipes to their end,
        which closes them."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._process.pid, signal.SIGKILL)
        await self._process.communicate()


class SubprocessTransport(CommandTransport):
    """Commands of one location run by the local ``sh``."""

    @property
    def hands_over_files(self) -> bool:
        """Always: the process gets the local file as its standard input or output."""
        return True

    async def _start(self, command: str, path: str, stdin: int, stdout: int) -> Process:
        try:
            return await asyncio.create_subprocess_exec(
                "sh",
                "-c",
                wire(in_c_locale(command)),
                stdin=stdin,
                stdout=stdout,
                stderr=subprocess.PIPE,
                start_new_session=True,
            )
        except OSError as exc:
            raise LocationUnreachableError(self.location, path, str(exc)) from exc

    async def run(
        self, command: str, path: str, data: Buffer | Sequence[Buffer] = b""
    ) -> Completed:
        pieces = [data] if isinstance(data, bytes | memoryview) else data
        process = await self._start(command, path, subprocess.PIPE, subprocess.PIPE)
        stdout, stderr = await process.communicate(b"".join(pieces))
        assert process.returncode is not None
        return Completed(process.returncode, stdout, stderr.decode(errors="replace"))

    @contextlib.asynccontextmanager
    async def stream(
        self, command: str, path: str, *, stdin: int | None = None, stdout: int | None = None
    ) -> AsyncIterator[Stream]:
        process = await self._start(
            command,
            path,
            subprocess.PIPE if stdin is None else stdin,
            subprocess.PIPE if stdout is None else stdout,
        )
        stream = ProcessStream(process, self.location, path)
        try:
            yield stream
        finally:
            await stream.stop()


class SubprocessConnector(ShellConnector):
    """One location, ``here``: this machine, through :class:`SubprocessTransport`."""

    def __init__(self, *, verify: bool = False) -> None:
        super().__init__(verify=verify)
        self._transports: dict[ExecutionLocation, SubprocessTransport] = {}

    def locations(self, deployment: str) -> Sequence[ExecutionLocation]:
        return (ExecutionLocation(deployment, "here"),)

    def transport(self, location: ExecutionLocation) -> SubprocessTransport:
        if location.name != "here":
            raise UnknownLocationError(location, ["here"])
        return self._transports.setdefault(location, SubprocessTransport(location))
