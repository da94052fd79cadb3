"""A shell kept open on one SSH channel that runs our commands one after another.

Opening a channel per command costs a round trip and a login shell on the host (its
start-up files run every time: 80 ms or more on a login node with a module system), and a
channel closed at sshd's ``MaxSessions`` limit is counted until sshd's loop has collected
it, so the next one may be refused. A runner pays the login shell once and keeps its
channel: each command is ``sh -c`` started by the runner's POSIX shell, its input given
by length, its output and exit status framed by a random marker. Its answer to a
:meth:`~ShellRunner.ping` is also a proof that sshd has read and handled everything sent
on the connection before it: channels closed by then are no longer counted.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Sequence

import asyncssh

from streamflow_data.shell import Buffer, Completed, quote
from streamflow_data_ssh.channels import send_in_slices

__all__ = ["ShellRunner", "new_marker", "runner_command"]

_READ = 64 * 1024

# Requests, one line each: "l 0 N" then the command on one line; "b C N" then the command
# in C bytes (it holds newlines); "p" for a ping. N bytes of input follow a command. The
# answer is the command's output, then the marker and its exit status on stdout and the
# marker on stderr. dd reads exactly the bytes asked for (fullblock, count_bytes), and
# ``cat`` takes what the command left of its input, so the next request starts in line.
_DRIVER = """m={marker}
while read -r k c n; do
  case $k in
  l) IFS= read -r x || exit 1 ;;
  b) x=$(dd bs="$c" count=1 iflag=fullblock status=none) ;;
  p) printf '%s0\\n' "$m"; printf '%s\\n' "$m" >&2; continue ;;
  *) exit 1 ;;
  esac
  if [ "$n" -eq 0 ]; then sh -c "$x" </dev/null; s=$?
  else dd bs=65536 count="$n" iflag=fullblock,count_bytes status=none |
    {{ sh -c "$x"; s=$?; cat >/dev/null; exit "$s"; }}; s=$?
  fi
  printf '%s%d\\n' "$m" "$s"; printf '%s\\n' "$m" >&2
done"""


def runner_command(marker: str) -> str:
    """The command that starts a runner answering with ``marker`` (hex digits)."""
    return f"exec sh -c {quote(_DRIVER.format(marker=marker))}"


class ShellRunner:
    """One runner: :meth:`run` and :meth:`ping` take turns on its channel.

    Any failure on the way (the channel lost, an answer out of line, the caller
    cancelled mid-command) leaves it :attr:`broken`: its channel is then only fit to be
    closed, as what the shell reads next is unknown.
    """

    def __init__(self, process: asyncssh.SSHClientProcess[bytes], marker: str) -> None:
        self._process = process
        self._marker = marker.encode()
        self._turn = asyncio.Lock()
        self.broken = False
        """Whether a request failed part-way: the runner must be closed, not used."""

    @classmethod
    async def start(cls, process: asyncssh.SSHClientProcess[bytes], marker: str) -> ShellRunner:
        """The runner of ``process`` (started with :func:`runner_command`), once it has
        answered a ping: what the login shell printed before is dropped."""
        runner = cls(process, marker)
        await runner.ping()
        return runner

    async def run(self, command: bytes, pieces: Sequence[Buffer]) -> Completed:
        """Run ``command`` with ``pieces`` as its whole input."""
        size = sum(len(piece) for piece in pieces)
        if b"\n" in command:
            request = b"b %d %d\n%s" % (len(command), size, command)
        else:
            request = b"l 0 %d\n%s\n" % (size, command)
        return await self._ask(request, pieces)

    async def ping(self) -> None:
        """One round trip through sshd's loop and the shell, running nothing."""
        await self._ask(b"p\n", ())

    async def _ask(self, request: bytes, pieces: Sequence[Buffer]) -> Completed:
        async with self._turn:
            if self.broken:
                raise ConnectionAbortedError("the command runner failed before")
            answer = asyncio.ensure_future(asyncio.gather(self._output(), self._errors()))
            try:
                self._process.stdin.write(request)
                await send_in_slices(self._process.stdin, pieces)
                (stdout, status), stderr = await answer
            except BaseException:
                self.broken = True
                answer.cancel()
                raise
        return Completed(status, stdout, stderr.decode(errors="replace"))

    async def _output(self) -> tuple[bytes, int]:
        """The command's output up to the marker, and the status after it."""
        received = bytearray()
        searched = 0
        while True:
            found = received.find(self._marker, searched)
            if found < 0:
                searched = max(0, len(received) - len(self._marker) + 1)
            else:
                searched = found
                end = received.find(b"\n", found)
                if end >= 0:
                    status = received[found + len(self._marker) : end]
                    if end + 1 != len(received) or not status.isdigit():
                        raise ConnectionAbortedError("the command runner answered out of line")
                    return bytes(received[:found]), int(status)
            received += await self._read(self._process.stdout)

    async def _errors(self) -> bytes:
        """What the command wrote to its standard error, up to the marker's line."""
        received = bytearray()
        line = self._marker + b"\n"
        while not received.endswith(line):
            received += await self._read(self._process.stderr)
        return bytes(received[: -len(line)])

    @staticmethod
    async def _read(reader: asyncssh.SSHReader[bytes]) -> bytes:
        chunk = await reader.read(_READ)
        if not chunk:
            raise ConnectionAbortedError("the command runner's shell exited")
        return chunk

    async def close(self) -> None:
        """End the shell and wait until sshd has closed the channel."""
        self.broken = True
        self._process.close()
        await self._process.wait_closed()


def new_marker() -> str:
    """A marker no command's output holds by chance."""
    return secrets.token_hex(16)
