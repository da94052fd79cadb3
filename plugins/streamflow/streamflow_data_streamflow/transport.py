"""Commands on a location of any StreamFlow deployment, through that deployment's connector.

StreamFlow's connectors (docker, kubernetes, singularity, batch systems wrapping SSH, ...)
each run commands on their locations: ``run`` to the end with the output as text, and
``get_stream_reader``/``get_stream_writer`` as one-way byte streams. That is enough for
:class:`~streamflow_data.shell.ShellConnector`: this module is a
:class:`~streamflow_data.shell.CommandTransport` over them, so every such deployment gets
this project's engine (chunked, verified, resumable copies; tar batches of small files).

What the connectors do not give, the commands recover on the host: each script travels
base64-encoded (any byte of a name survives StreamFlow's text commands), and its exit
status, error output and, for ``run``, standard output come back base64-encoded after a
marker, or through small files beside it, ``$TMPDIR/.sfd-*``, removed once read.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import os
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any, Literal

from streamflow_data.sdk import ConnectorError, ExecutionLocation, LocationUnreachableError
from streamflow_data.shell import (
    Buffer,
    CommandTransport,
    Completed,
    ShellConnector,
    Stream,
    in_c_locale,
    wire,
)

__all__ = ["CommandsConnector", "CommandsTransport"]

_SETTLE_POLLS = 600
"""Tenths of a second a collecting command waits for a stream's command to record its
status (its channel may close just before the command ends)."""


def _shell_words(script: str) -> list[str]:
    """``sh -c`` running ``script``, as words StreamFlow joins into one command line: the
    script base64-encoded, so that no byte of it depends on StreamFlow's quoting."""
    encoded = base64.b64encode(wire(in_c_locale(script))).decode("ascii")
    return ["sh", "-c", f"'eval \"$(echo {encoded} | base64 -d)\"'"]


def _report(marker: str, stdout: str) -> str:
    """A line ``MARKER:STDOUT:STATUS:STDERR`` (base64 fields), after ``stdout``, a
    command that prints the output; ``$f`` names the command's status and error files."""
    return (
        f"printf '%s:' {marker}; {stdout} | base64 | tr -d '\\n'; "
        's=$(cat "$f.s" 2>/dev/null || echo 255); printf \':%s:\' "$s"; '
        'base64 <"$f.e" 2>/dev/null | tr -d \'\\n\'; echo; rm -f "$f.s" "$f.e" "$f.o" "$f.p"'
    )


class CommandsTransport(CommandTransport):
    """Commands of one location, run by a StreamFlow connector (see the module).

    ``location`` is ours; ``connector`` and ``sf_location`` are StreamFlow's, and every
    failure of theirs becomes a :class:`LocationUnreachableError` (a StreamFlow connector
    may raise anything).
    """

    def __init__(self, location: ExecutionLocation, connector: Any, sf_location: Any) -> None:
        super().__init__(location)
        self._connector = connector
        self._sf_location = sf_location

    def _files(self) -> tuple[str, str]:
        """A marker and the shell assignment of ``$f``, the prefix of a command's files."""
        token = os.urandom(8).hex()
        return f"SFD{token}", f"f=${{TMPDIR:-/tmp}}/.sfd-{token}"

    @contextlib.contextmanager
    def translating(self, path: str) -> Iterator[None]:
        """Calls into StreamFlow's connector, whose every failure (it may raise anything)
        means the location is lost: :class:`LocationUnreachableError`."""
        try:
            yield
        except Exception as exc:
            detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            raise LocationUnreachableError(
                self.location, path, f"StreamFlow connector: {detail}"
            ) from exc

    async def _run_script(self, script: str, path: str) -> str:
        """Run ``script`` to its end; its output as text."""
        with self.translating(path):
            output, _ = await self._connector.run(
                location=self._sf_location, command=_shell_words(script), capture_output=True
            )
        return str(output)

    async def _collect(self, marker: str, files: str, stdout: str, path: str) -> Completed:
        """Run the report of a command that ran (or still ends) elsewhere."""
        wait = (
            f'i=0; while [ ! -e "$f.s" ] && [ $i -lt {_SETTLE_POLLS} ]; '
            "do sleep 0.1; i=$((i+1)); done"
        )
        output = await self._run_script(f"{files}; {wait}; {_report(marker, stdout)}", path)
        return self._parse(marker, output, path)

    def _parse(self, marker: str, output: str, path: str) -> Completed:
        start = output.rfind(f"{marker}:")
        fields = output[start:].split("\n", 1)[0].split(":") if start >= 0 else []
        try:
            _, stdout, status, stderr = fields
            return Completed(
                int(status),
                base64.b64decode(stdout),
                base64.b64decode(stderr).decode(errors="replace"),
            )
        except (ValueError, binascii.Error):
            raise LocationUnreachableError(
                self.location, path, f"the command's report is garbled: {output[-200:]!r}"
            ) from None

    async def run(
        self, command: str, path: str, data: Buffer | Sequence[Buffer] = b""
    ) -> Completed:
        pieces = [data] if isinstance(data, bytes | memoryview) else list(data)
        if any(len(piece) for piece in pieces):
            async with self.stream(command, path) as stream:
                await stream.send_pieces(pieces)
                return await stream.finish()
        marker, files = self._files()
        script = (
            f'{files}; {{ ( {command} ) 2>"$f.e" </dev/null; echo $? >"$f.s"; }} >"$f.o"; '
            + _report(marker, 'cat "$f.o"')
        )
        return self._parse(marker, await self._run_script(script, path), path)

    @contextlib.asynccontextmanager
    async def stream(
        self, command: str, path: str, *, stdin: int | None = None, stdout: int | None = None
    ) -> AsyncIterator[Stream]:
        stream = CommandsStream(self, command, path)
        try:
            yield stream
        finally:
            await stream.stop()

    async def _open(self, direction: Literal["in", "out"], script: str, path: str) -> Any:
        """StreamFlow's writer (``in``: to the command's input) or reader (``out``)."""
        words = _shell_words(script)
        with self.translating(path):
            if direction == "in":
                return await self._connector.get_stream_writer(words, self._sf_location)
            return await self._connector.get_stream_reader(words, self._sf_location)


class CommandsStream(Stream):
    """One command run through a StreamFlow connector's one-way streams: started by the
    first :meth:`send_pieces` (a writer) or :meth:`receive_into` (a reader), or run to its
    end by :meth:`finish` when neither came."""

    def __init__(self, transport: CommandsTransport, command: str, path: str) -> None:
        self._transport = transport
        self._command, self._path = command, path
        self._marker, self._files = transport._files()
        self._context: Any = None
        self._wrapper: Any = None
        self._direction: Literal["in", "out"] | None = None
        self._done: Completed | None = None
        self._ended = False
        """Whether the output was read to its end."""

    async def _start(self, direction: Literal["in", "out"]) -> Any:
        if self._direction is not None:
            if self._direction != direction:
                raise ConnectorError(
                    self._transport.location, self._path, "a stream is either read or written"
                )
            return self._wrapper
        self._direction = direction
        if direction == "in":
            script = f'{self._files}; ( {self._command} ) 2>"$f.e" >"$f.o"; echo $? >"$f.s"'
        else:  # a group of its own, which stop() kills: its output need not be read out
            script = (
                f'{self._files}; set -m; ( {self._command} ) 2>"$f.e" </dev/null & p=$!; '
                'echo $p >"$f.p"; wait $p; echo $? >"$f.s"'
            )
        context = await self._transport._open(direction, script, self._path)
        with self._transport.translating(self._path):
            self._wrapper = await context.__aenter__()
        self._context = context
        return self._wrapper

    async def send_pieces(self, pieces: Sequence[Buffer]) -> None:
        wrapper = await self._start("in")
        with self._transport.translating(self._path):
            for piece in pieces:
                await wrapper.write(bytes(piece))

    async def receive_into(self, buffer: memoryview) -> int:
        wrapper = await self._start("out")
        with self._transport.translating(self._path):
            data = await wrapper.read(len(buffer))
        if not data:
            self._ended = True
            return 0
        buffer[: len(data)] = data
        return len(data)

    async def _close(self) -> None:
        context, self._context = self._context, None
        if context is not None:
            with self._transport.translating(self._path):
                await context.__aexit__(None, None, None)

    async def finish(self) -> Completed:
        if self._done is None:
            if self._direction is None:
                self._done = await self._transport.run(self._command, self._path)
            else:
                await self._close()
                stdout = 'cat "$f.o" 2>/dev/null' if self._direction == "in" else "true"
                self._done = await self._transport._collect(
                    self._marker, self._files, stdout, self._path
                )
        return self._done

    async def stop(self) -> None:
        if self._done is not None or self._direction is None:
            return
        with contextlib.suppress(ConnectorError):
            if self._direction == "out" and not self._ended:
                # Some connectors wait for the command's end on closing: end it first.
                kill = f'{self._files}; kill -TERM -- -"$(cat "$f.p")" 2>/dev/null; true'
                await self._transport._run_script(kill, self._path)
                buffer = memoryview(bytearray(1 << 16))
                while await self.receive_into(buffer):
                    pass
            await self.finish()


class CommandsConnector(ShellConnector):
    """The locations of one StreamFlow deployment, each reached through its connector
    (see :class:`CommandsTransport`); a location joins when the data manager first meets
    it (:meth:`add`)."""

    def __init__(self, connector: Any) -> None:
        super().__init__()
        self._connector = connector
        self._transports: dict[str, CommandsTransport] = {}

    def add(self, location: ExecutionLocation, sf_location: Any) -> None:
        """Serve ``location``, StreamFlow's ``sf_location``."""
        if location.name not in self._transports:
            self._transports[location.name] = CommandsTransport(
                location, self._connector, sf_location
            )

    def locations(self, deployment: str) -> Sequence[ExecutionLocation]:
        return tuple(transport.location for transport in self._transports.values())

    def transport(self, location: ExecutionLocation) -> CommandsTransport:
        return self._transports[location.name]
