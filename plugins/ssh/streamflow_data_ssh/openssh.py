"""Byte streams through the OpenSSH client: sessions multiplexed on one master per node.

Why: asyncssh frames, encrypts and sends every SSH packet (32 KiB at most) in Python. On
this project's 2-core machines that took 1.9 s of CPU per 256 MiB uploaded, against 0.8 s
for OpenSSH's ``ssh``, and with ``sshd`` on the other core that CPU was the transfer rate.
So when the ``ssh`` program is installed, the long byte streams of big files (the remote
``dd`` lanes of :mod:`~streamflow_data.shell.lanes`) run through it: one master connection
per node (``ControlMaster``), each lane one session on it, our process writing and reading
pipes. So do batches of small files of 256 KiB or more, and batch reads (see
:mod:`~streamflow_data_ssh.pool`). Commands and metadata stay on asyncssh's command
runners, where the round trips count more than the bytes.

A new session pays the login shell on the host (80 ms or more on a login node with a
module system) before its command starts. So the master keeps a few *spare* sessions,
logged in and waiting for a command: a stream through pipes takes one, sends its command
ahead of its input, and another spare starts behind it.

``ssh`` gets the connector's own settings (user, port, keys, known_hosts and host-key
checking, ciphers, compression, timeout) and ``-F /dev/null``, so the user's ssh_config
changes nothing, as with asyncssh. It never asks: ``BatchMode``. Its control socket lives
in a private directory made for the master and removed when it stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import math
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable

from streamflow_data.sdk import (
    AuthenticationError,
    ConnectorError,
    ExecutionLocation,
    LocationUnreachableError,
)
from streamflow_data.shell import wire
from streamflow_data_ssh.channels import OpenSSHStream
from streamflow_data_ssh.options import NodeOptions, SSHOptions

__all__ = ["OpenSSHMaster", "find_ssh"]

_PIPE_SIZE = 1 << 20
"""Pipe capacity asked for a stream's input (Linux ``F_SETPIPE_SZ``), and the output read
at once: a 1 MiB block in one system call."""
_SPARE_COMMAND = (
    'exec sh -c \'IFS= read -r n && c=$(dd bs="$n" count=1 iflag=fullblock status=none)'
    ' && exec sh -c "$c"\''
)
"""What a spare session runs once logged in: it reads a line with the size of the command,
then exactly that many bytes (``read`` and ``dd`` take no byte more from the pipe), and
becomes that command, which reads the rest of the input."""
_AUTHENTICATION_FAILURES = ("Permission denied", "Host key verification failed", "IDENTIFICATION")


def find_ssh() -> str | None:
    """The ``ssh`` program's path, or None. Blocking: it searches ``PATH``."""
    return shutil.which("ssh")


class OpenSSHMaster:
    """The ``ssh`` master connection to one node, started beside the node's first
    asyncssh connection (see :class:`~streamflow_data_ssh.pool.NodePool`) or by the first
    stream that needs it."""

    def __init__(
        self,
        program: str,
        node: NodeOptions,
        options: SSHOptions,
        location: ExecutionLocation,
        spares: Callable[[], int],
    ) -> None:
        self.location = location
        self.sessions = 0
        """Streams open on the master now: with its own session and the spares, at most
        ``max_sessions`` (the pool keeps to that, as sshd's ``MaxSessions`` requires)."""
        self._program = program
        self._node = node
        self._options = options
        self._directory: str | None = None
        self._master: asyncio.subprocess.Process | None = None
        self._starting = asyncio.Lock()
        self._spares_wanted = spares
        """How many spare sessions to keep now (the pool's answer may change as it learns
        how long a login takes)."""
        self._spares: list[OpenSSHStream] = []
        self._spawning = 0
        self._refilling: asyncio.Task[None] | None = None

    def _argv(self, *extra: str, command: str | None = None) -> list[str]:
        options, node = self._options, self._node
        argv = [self._program, "-F", "/dev/null", "-p", str(node.port), "-T"]
        settings = {
            "BatchMode": "yes",
            "ConnectTimeout": str(math.ceil(options.connect_timeout)),
            "Ciphers": ",".join(options.ciphers),
            "Compression": "yes" if options.compression else "no",
            "ControlPath": os.path.join(self._directory or "", "master"),
            "ServerAliveInterval": "15",
        }
        if options.check_host_keys:
            settings["StrictHostKeyChecking"] = "yes"
            if options.known_hosts is not None:
                settings["UserKnownHostsFile"] = options.known_hosts
        else:
            settings.update(StrictHostKeyChecking="no", UserKnownHostsFile="/dev/null")
        if options.client_keys is not None:
            settings["IdentitiesOnly"] = "yes"
            for key in options.client_keys:
                argv += ["-i", key]
        username = node.username or options.username
        if username:
            argv += ["-l", username]
        for name, value in settings.items():
            argv += ["-o", f"{name}={value}"]
        argv += [*extra, "--", node.hostname]
        return argv if command is None else [*argv, command]

    @property
    def running(self) -> bool:
        """Whether the master has started and not exited."""
        return self._master is not None and self._master.returncode is None

    async def start(self) -> None:
        """Start the master unless it runs."""
        async with self._starting:
            if self._master is None or self._master.returncode is not None:
                await self._start()

    async def _start(self) -> None:
        """Start the master and wait until its own session runs (its socket listens then).

        That session reads the master's standard input, a pipe from this process: if this
        process dies without closing the master, the pipe ends, the session with it, and
        the master exits once its streams are done.
        """
        spares, self._spares = self._spares, []
        for spare in spares:  # sessions of the master that ended
            await spare.close_ended()
        if self._directory is None:
            self._directory = await asyncio.to_thread(_socket_directory)
        log = os.path.join(self._directory, "log")
        argv = self._argv(
            "-o", "ControlMaster=yes", "-o", "ControlPersist=no",
            command="echo ready && exec cat > /dev/null",
        )  # fmt: skip
        messages = await asyncio.to_thread(open, log, "wb")
        try:
            master = await asyncio.create_subprocess_exec(
                *argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=messages
            )
        finally:
            messages.close()
        assert master.stdout is not None
        try:
            ready = await asyncio.wait_for(
                master.stdout.readline(), self._options.connect_timeout + 5
            )
        except TimeoutError:
            ready = b""
        except BaseException:  # cancelled while it connects: it stops with us
            await _end(master)
            raise
        if ready != b"ready\n":
            await _end(master)
            raise self._failure(await asyncio.to_thread(_tail, log))
        self._master = master
        self._refill()

    def _failure(self, message: str) -> ConnectorError:
        detail = f"ssh: {message.strip() or 'the master connection did not start'}"
        if any(failure in message for failure in _AUTHENTICATION_FAILURES):
            return AuthenticationError(self.location, "", detail)
        return LocationUnreachableError(self.location, "", detail)

    async def open(
        self, command: str, stdin: int | None = None, stdout: int | None = None
    ) -> OpenSSHStream:
        """Run ``command`` on the node in a session of the master (started if needed).

        Its input is a pipe of ours, or the open local file ``stdin``, which the master
        then reads itself (ssh hands it the descriptor); its output likewise a pipe, or
        the open local file ``stdout``, which the master then writes: none of those bytes
        pass through this process. A command on pipes goes to a spare session when one is
        left (see :meth:`make_room`).
        """
        await self.start()
        if stdin is not None or stdout is not None:
            return await self._session(command, stdin, stdout)
        self._refill()
        request = wire(command)
        while (spare := await self._take_spare()) is not None:
            try:
                await spare.send_pieces([b"%d\n" % len(request), request])
            except OSError:  # it ended since: the next one, or a new session
                await spare.stop()
                continue
            spare.spare = True
            return spare
        return await self._session(command)

    async def _session(
        self, command: str, stdin: int | None = None, stdout: int | None = None
    ) -> OpenSSHStream:
        """A new session of the master running ``command`` (see :meth:`open`)."""
        # The pipes are ours, not asyncio's: sized before ssh starts, used without a copy,
        # and closed by us to stop a stream (see OpenSSHStream). ssh gets the other ends.
        input = output = None
        ends: list[int] = []  # the ends ssh gets, closed here once it has them
        try:
            if stdin is None:
                stdin, input = os.pipe()
                ends.append(stdin)
            if stdout is None:
                output, stdout = os.pipe()
                ends.append(stdout)
            for pipe in (input, output):
                if pipe is not None:
                    _widen(pipe)
                    os.set_blocking(pipe, False)
            process = await asyncio.create_subprocess_exec(
                *self._argv("-o", "ControlMaster=no", command=command),
                stdin=stdin,
                stdout=stdout,
                stderr=subprocess.PIPE,
            )
        except BaseException:
            for pipe in (input, output):
                if pipe is not None:
                    os.close(pipe)
            raise
        finally:
            for pipe in ends:
                os.close(pipe)
        return OpenSSHStream(process, input, output)

    async def make_room(self, *, piped: bool) -> bool:
        """Whether one more stream fits on the master: in a spare session when it runs on
        pipes (``piped``), else in a new session. False when streams fill it.

        A stream on a local file closes the spares: they serve bursts of streams on pipes
        (batches of small files), and idle beside a big file's streams they slow them."""
        if piped:
            return bool(self._spares) or self._occupied() < self._options.max_sessions
        await self._stop_spares()
        return self._occupied() < self._options.max_sessions

    async def _stop_spares(self) -> None:
        """Stop the spare sessions together: each ends once the host has closed it."""
        spares, self._spares = self._spares, []
        await asyncio.gather(*(spare.stop() for spare in spares))

    def _occupied(self) -> int:
        """Sessions open or opening on the master: its own, the streams', the spares'."""
        return 1 + self.sessions + len(self._spares) + self._spawning

    async def _take_spare(self) -> OpenSSHStream | None:
        """The oldest spare session still running, or None; those that ended are closed."""
        while self._spares:
            spare = self._spares.pop(0)
            if spare.running:
                return spare
            await spare.close_ended()
        return None

    def _refill(self) -> None:
        """Start spare sessions in the background, as many as wanted and as far as the
        streams leave room."""
        if self._refilling is None or self._refilling.done():
            self._refilling = asyncio.create_task(self._spawn_spares())

    async def _spawn_spares(self) -> None:
        while (
            self.running
            and len(self._spares) + self._spawning < self._spares_wanted()
            and self._occupied() < self._options.max_sessions
        ):
            self._spawning += 1
            try:
                spare = await self._session(_SPARE_COMMAND)
            except OSError:  # the next stream that needs a session will say why
                return
            finally:
                self._spawning -= 1
            self._spares.append(spare)

    async def close(self) -> None:
        """Stop the master (its sessions end with it) and remove its socket's directory."""
        async with self._starting:
            if self._refilling is not None:
                self._refilling.cancel()
                await asyncio.wait([self._refilling])
            spares, self._spares = self._spares, []
            for spare in spares:
                spare.kill()  # first: one the master took down would be reaped twice
            master, self._master = self._master, None
            ending = [spare.close_ended() for spare in spares]
            if master is not None:
                ending.append(_end(master))
            # Together: a killed session is seen to end once the master, which holds its
            # pipes until the host closes it (after its login shell, if it is logging in),
            # has ended.
            await asyncio.gather(*ending)
            if self._directory is not None:
                await asyncio.to_thread(shutil.rmtree, self._directory, True)
                self._directory = None


_DIRECTORY_PREFIX = "sfd-openssh-"


def _socket_directory() -> str:
    """A private directory for a master's socket and log, named for this process; those
    that processes no longer running left behind (killed before they could remove them)
    are removed first. Blocking."""
    base = tempfile.gettempdir()
    with contextlib.suppress(OSError), os.scandir(base) as entries:
        for entry in entries:
            pid, dash, _ = entry.name.removeprefix(_DIRECTORY_PREFIX).partition("-")
            if (
                entry.name.startswith(_DIRECTORY_PREFIX)
                and dash
                and pid.isdigit()
                and entry.is_dir(follow_symlinks=False)
                and entry.stat(follow_symlinks=False).st_uid == os.geteuid()
                and not _running(int(pid))
            ):
                shutil.rmtree(entry.path, ignore_errors=True)
    return tempfile.mkdtemp(prefix=f"{_DIRECTORY_PREFIX}{os.getpid()}-", dir=base)


def _running(pid: int) -> bool:
    """Whether a process ``pid`` exists (ours or another user's)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # it exists, and is not ours to signal
        return True
    return True


def _tail(path: str) -> str:
    """The end of the master's log (what ssh said when it failed)."""
    with contextlib.suppress(OSError), open(path, "rb") as log:
        return log.read()[-2000:].decode(errors="replace")
    return ""


def _widen(pipe: int) -> None:
    """Ask for a 1 MiB pipe (Linux's ``F_SETPIPE_SZ``; elsewhere the default pipe works,
    with more wake-ups of the loop)."""
    resize = getattr(fcntl, "F_SETPIPE_SZ", None)
    if resize is not None:
        with contextlib.suppress(OSError):
            fcntl.fcntl(pipe, resize, _PIPE_SIZE)


async def _end(process: asyncio.subprocess.Process) -> None:
    """Kill a master and wait for it. Not SIGTERM: OpenSSH 9.2 was seen to act on one
    that came while it was busy (closing its spare sessions' channels) only at its next
    keep-alive, 15 s later, and keeps ignoring it when started with it ignored. The host
    sees the same either way (the connection drops, its sessions end), and the socket's
    directory is removed by :meth:`OpenSSHMaster.close`."""
    with contextlib.suppress(ProcessLookupError):
        if process.returncode is None:
            process.kill()
        await process.wait()
