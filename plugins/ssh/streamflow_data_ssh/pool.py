"""Connections to one node: at most ``max_connections``, each with at most
``max_sessions`` channels open, re-established after a drop, closed by :meth:`close`.

Short commands run on command runners (:mod:`~streamflow_data_ssh.runner`), kept open on
their channels between commands. Readers and writers keep their channels (remote ``dd``
processes) open between blocks. A runner or stream not in use is *idle*: when every slot
is taken, the oldest idle one is closed to make room (a connection keeps its last
runner), so long-lived files never starve the rest of the node.

Those long streams run on the node's OpenSSH master when there is one with room
(:mod:`~streamflow_data_ssh.openssh`, option ``streams``), else on an asyncssh channel.
With ``streams = "auto"``, a master that fails to start while asyncssh then connects is
given up for the pool's lifetime, with a warning: ``ssh`` cannot use these settings.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import math
import socket
import struct
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import asyncssh

from streamflow_data.sdk import (
    ConfigurationError,
    ConnectorError,
    ExecutionLocation,
    LocationUnreachableError,
)
from streamflow_data.shell import (
    Buffer,
    Closer,
    CommandTransport,
    Completed,
    Stream,
    in_c_locale,
    wire,
)
from streamflow_data_ssh.channels import AsyncsshStream, OpenSSHStream, TranslatedStream
from streamflow_data_ssh.failures import translate, translating
from streamflow_data_ssh.openssh import OpenSSHMaster, find_ssh
from streamflow_data_ssh.options import NodeOptions, SSHOptions
from streamflow_data_ssh.runner import ShellRunner, new_marker, runner_command

__all__ = ["NodePool", "StreamCounts"]

logger = logging.getLogger(__name__)
_STREAMED_INPUT = 256 * 1024
"""A command given at least this much input runs as a stream (on the OpenSSH master when
there is one): a batch of small files is bytes first, round trips second."""
_WAIT_FOR_MASTER = 16 * 1024 * 1024
"""While the OpenSSH master starts, a command given less input than this runs on a
command runner instead: asyncssh encrypts that much in less time than the master takes to
start (a connection, a login and a session of its own)."""
_ROUND_TRIP_PER_STREAM = 0.002
_BATCH_STREAMS = 3
"""Batches of small files read from, or written to, a node at once, at least (see
:meth:`NodePool.batch_streams`)."""
_START_UP_PER_BATCH = 0.07
"""Seconds of a session's start-up that one more batch read at once hides: about what a
batch takes once its ``tar`` runs (a block of small files sent and unpacked)."""
_TCP_RTT_OFFSET = 68
"""Where ``tcpi_rtt`` (microseconds) sits in Linux's ``struct tcp_info``."""
Process = asyncssh.SSHClientProcess[bytes]


@dataclass(slots=True)
class StreamCounts:
    """The streams a node has carried so far, by client (for diagnostics and tests)."""

    openssh: int = 0
    asyncssh: int = 0
    peak_openssh: int = 0
    """The most streams open on the OpenSSH master at once."""
    spare: int = 0
    """Streams on the master that took a spare session, its login done beforehand."""


@dataclass(slots=True, eq=False)
class _Connection:
    connection: asyncssh.SSHClientConnection
    channels: int = 0
    """Its channels open (or opening)."""
    unsettled: int = 0
    """Its channels closed since the last round trip through one of its runners: sshd
    counts a closed session against ``MaxSessions`` until its loop has collected it, and
    refuses ("no more sessions") a channel asked for in the same read as the close."""
    closed_at: float = 0.0
    """When (monotonic) its last channel closed."""
    runners: list[ShellRunner] = field(default_factory=list)
    """Its command runners, each holding a channel."""
    idle: list[ShellRunner] = field(default_factory=list)
    """Those of its runners not running a command."""


_SLOT_REST = 0.003
"""Seconds after a channel closed before a connection at sshd's limit opens another when
it has no idle runner to prove the close collected: timing, not a proof; a refusal left
is asked for again (see :func:`_open_process`)."""


@dataclass(slots=True)
class _Slots:
    """Channel slots of a node, with the idle channels that may be closed for room."""

    free: int
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)
    idle: collections.OrderedDict[object, Closer] = field(default_factory=collections.OrderedDict)
    """Idle streams and runners, by age, with what closes each to free its slot."""


_Reused = tuple[ShellRunner, _Connection]
"""An idle runner taken again, with its connection."""

_REFUSED_WAIT = 0.02
_REFUSED_TRIES = 50
"""A channel the server refuses is asked for again after ``_REFUSED_WAIT`` s, at most
``_REFUSED_TRIES`` times (see :func:`_open_process`)."""


async def _open_process(
    connection: asyncssh.SSHClientConnection, command: str
) -> asyncssh.SSHClientProcess[bytes]:
    """``command`` started in a new channel.

    sshd counts a closed session against ``MaxSessions`` until its loop has collected
    the channel, which may be after it reads the next channel request in the same buffer:
    at the limit, it then refuses that request ("no more sessions"), though our count is
    right. Such a refusal is asked again after a moment; the command had not started.
    """
    tries = 1
    while True:
        # Runs once the request is sent (create_process writes it before it waits).
        asyncio.get_running_loop().call_soon(_acknowledge_at_once, connection)
        try:
            return await connection.create_process(wire(in_c_locale(command)), encoding=None)
        except asyncssh.ChannelOpenError:
            if tries >= _REFUSED_TRIES:
                raise
            tries += 1
            await asyncio.sleep(_REFUSED_WAIT)


_DOWN_FOR = 10.0
"""Seconds after a node's connection attempts all failed during which a new connection
is tried once, without retries (or as long as those attempts took, if longer)."""


class NodePool(CommandTransport):
    """The connections to one node and the commands run there."""

    def __init__(self, node: NodeOptions, options: SSHOptions, location: ExecutionLocation):
        super().__init__(location)
        self.node = node
        self.options = options
        self._connections: list[_Connection] = []
        self._connecting = asyncio.Lock()
        self._slots = _Slots(options.max_connections * options.max_sessions)
        self._client: asyncssh.SSHClientConnectionOptions | None = None
        self._master: OpenSSHMaster | None = None
        # ``ssh`` cannot be given a passphrase: "auto" does not try it then.
        self._master_wanted = options.streams == "openssh" or (
            options.streams == "auto" and options.passphrase_file is None
        )
        self._warming: asyncio.Task[None] | None = None
        self._unclaimed: set[asyncio.Future[None]] = set()
        """Runners on their way that no command waits for (see :meth:`_take_runner`)."""
        self.streams = StreamCounts()
        self._closed = False
        self._down_until = 0.0
        """Until when (monotonic) a new connection gets one attempt, no back-off: the last
        one failed after all its retries."""
        self.commands_run = 0
        """Remote commands run so far (streams included): each one round trip or more."""
        self.channels_opened = 0
        """asyncssh channels opened so far (a runner's counts once for all its commands)."""
        self.round_trip: float | None = None
        """Seconds a packet takes to the node and back, as the kernel estimated it for the
        first connection (None before it, or where the kernel does not say)."""
        self.start_up: float | None = None
        """Seconds a new session takes to run a command, at least (the channel, the login
        shell): measured as each command runner starts; None before the first."""

    # -- connections -----------------------------------------------------------------------

    def _client_options(self) -> asyncssh.SSHClientConnectionOptions:
        """asyncssh's options for this node. Blocking: it reads key and known_hosts files."""
        options, node = self.options, self.node
        known_hosts: object = None
        if options.check_host_keys:
            known_hosts = options.known_hosts if options.known_hosts is not None else ()
        return asyncssh.SSHClientConnectionOptions(
            config=[],
            username=node.username or options.username or (),
            client_keys=options.client_keys if options.client_keys is not None else (),
            passphrase=_passphrase(options.passphrase_file),
            known_hosts=known_hosts,
            connect_timeout=options.connect_timeout,
            login_timeout=options.connect_timeout,
            encryption_algs=options.ciphers,
            compression_algs=["zlib@openssh.com", "zlib"] if options.compression else ["none"],
        )

    async def _connect(self) -> asyncssh.SSHClientConnection:
        """A new connection, after up to ``retries`` further attempts with back-off."""
        if self._client is None:
            try:
                self._client = await asyncio.to_thread(self._client_options)
            except (OSError, ValueError) as exc:  # unreadable keys or known_hosts
                raise ConfigurationError(f"SSH options of {self.location}: {exc}") from exc
        # Every operation on a node that just refused us (and the engine's retries of
        # each) would wait out the same back-off for the same answer: for a while after
        # one did, a single attempt decides.
        retries = self.options.retries if time.monotonic() >= self._down_until else 0
        attempt = 0
        started = time.monotonic()
        while True:
            try:
                connection = await asyncssh.connect(
                    self.node.hostname, self.node.port, options=self._client
                )
            except (asyncssh.Error, OSError, TimeoutError) as exc:
                error = translate(exc, self.location, "")
                if not error.retryable or attempt >= retries:
                    if retries:
                        down_for = max(time.monotonic() - started, _DOWN_FOR)
                        self._down_until = time.monotonic() + down_for
                    raise error from exc
                attempt += 1
                delay = self.options.retry_wait(attempt)
                logger.info(
                    "connecting to %s failed (%s); retry in %.1fs", self.location, exc, delay
                )
                await asyncio.sleep(delay)
            else:
                self._down_until = 0.0
                if self.round_trip is None:
                    self.round_trip = tcp_round_trip(connection.get_extra_info("socket"))
                if self._warming is None and self._master_wanted:
                    self._warming = asyncio.create_task(self._warm_master())
                return connection

    async def _warm_master(self) -> None:
        """Start the OpenSSH master beside the first connection: it takes about 0.2 s,
        which the node's first stream (the first big file, say) would otherwise wait for
        after everything before it. A failure here is left for that stream to meet."""
        with contextlib.suppress(ConnectorError, ConfigurationError):
            master = await self._openssh()
            if master is not None:
                await master.start()

    def chunk_streams(self) -> int | None:
        """Streams worth reading one file with at once: one per 2 ms of round trip, as a
        stream moves at most its 2 MiB window per round trip (1 GiB/s at 2 ms, more than
        one ``ssh`` encrypts); on a faster link parallel streams only contend for the
        master's core and the local file's lock (a 1 GiB download on loopback: 0.73x to
        0.81x of ``ssh cat`` with 4 lanes, 0.85x to 1.0x with one). None before the first
        connection."""
        if self.round_trip is None:
            return None
        return max(1, math.ceil(self.round_trip / _ROUND_TRIP_PER_STREAM))

    def batch_streams(self) -> int | None:
        """Batches of small files worth reading, or writing, at once. Each is a ``tar``
        in a session of its own: enough at once to hide a session's start-up (one more
        per ``_START_UP_PER_BATCH`` of :attr:`start_up`), ``_BATCH_STREAMS`` at least, or
        :meth:`chunk_streams` on a longer round trip; more only contend for this process
        and the node's cores and disk (see docs/ssh.md, "How data moves"). None before
        the first connection."""
        streams = self.chunk_streams()
        if streams is None:
            return None
        hiding = 1 + math.ceil((self.start_up or 0.0) / _START_UP_PER_BATCH)
        return max(_BATCH_STREAMS, streams, hiding)

    def _spares_wanted(self) -> int:
        """Spare sessions for the master to keep: one per batch read at once (each batch
        a session of its own, whose login shell a spare has paid beforehand), at most
        ``spare_sessions``."""
        return min(self.options.spare_sessions, self.batch_streams() or _BATCH_STREAMS)

    async def _pick(self) -> _Connection:
        """The least busy live connection with room, or a new one while under the cap,
        with one more channel counted; a connection at sshd's limit is settled first."""
        async with self._connecting:
            if self._closed:
                raise LocationUnreachableError(self.location, "", "the connector is closed")
            self._connections = [c for c in self._connections if not c.connection.is_closed()]
            room = [c for c in self._connections if c.channels < self.options.max_sessions]
            best = min(room, key=lambda c: (c.channels + c.unsettled, c.channels), default=None)
            if best is None or (
                best.channels and len(self._connections) < self.options.max_connections
            ):
                best = _Connection(await self._connect())
                self._connections.append(best)
            elif best.channels + best.unsettled >= self.options.max_sessions:
                await self._settle(best)
            best.channels += 1
            self.channels_opened += 1
            return best

    async def _settle(self, home: _Connection) -> None:
        """Make sure sshd no longer counts the channels closed on ``home``: a ping through
        one of its runners (an idle one if any, else after its command) answers only
        after sshd has handled everything sent before it, the closes included, and its
        loop has collected the closed sessions. Without a runner, wait ``_SLOT_REST``
        after the last close instead."""
        closed = home.unsettled
        runner = home.idle[-1] if home.idle else next(iter(home.runners), None)
        if runner is not None:
            try:
                await runner.ping()
            except (asyncssh.Error, OSError):
                await self._retire(runner, home)
            else:
                home.unsettled -= closed
                return
        resting = home.closed_at + _SLOT_REST - time.monotonic()
        if resting > 0:
            await asyncio.sleep(resting)
        home.unsettled -= closed

    def _closed_one(self, home: _Connection) -> None:
        home.channels -= 1
        home.unsettled += 1
        home.closed_at = time.monotonic()

    async def _acquire_slot(
        self, reuse: Callable[[], _Reused | None] | None = None
    ) -> _Reused | None:
        """Take a channel slot of the node (None), or what ``reuse`` offers instead (an
        idle runner, which holds one), closing the oldest idle stream or runner when
        every slot is taken."""
        slots = self._slots
        while True:
            async with slots.changed:
                if reuse is not None and (offered := reuse()) is not None:
                    return offered
                if slots.free:
                    slots.free -= 1
                    return None
                if not slots.idle:
                    await slots.changed.wait()
                    continue
                _, closer = slots.idle.popitem(last=False)
            await closer()  # releases its slot; loop to take it

    async def _release_slot(self) -> None:
        async with self._slots.changed:
            self._slots.free += 1
            self._slots.changed.notify()

    async def mark_idle(self, stream: Stream, closer: Closer) -> None:
        """``closer`` may be called to close ``stream`` and free its channel for another user."""
        async with self._slots.changed:
            self._slots.idle[stream] = closer
            self._slots.changed.notify()

    def mark_busy(self, stream: Stream) -> None:
        """``stream`` is in use again (or closed): it may not be taken."""
        self._slots.idle.pop(stream, None)

    @contextlib.asynccontextmanager
    async def _slot(self) -> AsyncIterator[None]:
        """One channel slot of the node, held for the block."""
        await self._acquire_slot()
        self.commands_run += 1
        try:
            yield
        finally:
            await self._release_slot()

    @contextlib.asynccontextmanager
    async def _connection(self) -> AsyncIterator[asyncssh.SSHClientConnection]:
        """The asyncssh connection that carries one more channel for the block."""
        chosen = await self._pick()
        try:
            yield chosen.connection
        finally:
            self._closed_one(chosen)

    # -- command runners --------------------------------------------------------------------

    def _idle_runner(self) -> _Reused | None:
        for home in self._connections:
            if home.idle and not home.connection.is_closed():
                runner = home.idle.pop()
                self._slots.idle.pop(runner, None)
                return runner, home
        return None

    async def _take_runner(self) -> _Reused:
        """An idle runner; else the first of a runner that ends its command and a new one
        started in a slot of its own. A new runner pays the node's login shell (80 ms or
        more on a login node) where a busy runner's command mostly ends in a few; one
        started and not taken stays, idle, for the next command."""
        reused = await self._acquire_slot(self._idle_runner)
        if reused is not None:
            return reused
        starting = asyncio.ensure_future(self._start_runner())
        if not any(home.runners for home in self._connections):
            return await starting  # none to wait for
        freed = asyncio.ensure_future(self._next_idle_runner())
        try:
            await asyncio.wait([starting, freed], return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            freed.cancel()
            self._unclaimed_runner(starting)
            self._unclaimed_runner(freed)
            raise
        if starting.done():
            freed.cancel()  # no-op if it took one: that one goes back
            self._unclaimed_runner(freed)
            return starting.result()
        self._unclaimed_runner(starting)
        return freed.result()

    async def warm_up(self) -> None:
        """Connect and start a command runner, left idle for the first command, which then
        pays neither the connection nor the login shell (the OpenSSH master starts beside
        the connection, as always). Nothing to do once the node has a connection or one
        is being made."""
        if self._closed or self._connections or self._connecting.locked():
            return
        await self._acquire_slot()
        with translating(self.location, ""):
            runner, home = await self._start_runner()
        await asyncio.shield(self._give_back(runner, home))  # idle even if we are cancelled

    async def _start_runner(self) -> _Reused:
        """A new runner, in the slot taken for it (given back if the start fails)."""
        try:
            home = await self._pick()
            try:
                marker = new_marker()
                started = time.monotonic()
                process = await _open_process(home.connection, runner_command(marker))
                runner = await ShellRunner.start(process, marker)
                took = time.monotonic() - started
                self.start_up = took if self.start_up is None else min(self.start_up, took)
            except BaseException:
                self._closed_one(home)
                raise
        except BaseException:
            await self._release_slot()
            raise
        home.runners.append(runner)
        return runner, home

    async def _next_idle_runner(self) -> _Reused:
        """The next runner to end its command (or an idle one), taken."""
        async with self._slots.changed:
            while (reused := self._idle_runner()) is None:
                await self._slots.changed.wait()
            return reused

    def _unclaimed_runner(self, taking: asyncio.Future[_Reused]) -> None:
        """The runner ``taking`` brings (one being started, or one that ended its
        command), which no command wants: idle once ``taking`` is done."""

        async def give_back() -> None:
            with contextlib.suppress(Exception):  # a failed start has freed its slot
                await self._give_back(*await taking)

        task = asyncio.ensure_future(give_back())
        self._unclaimed.add(task)
        task.add_done_callback(self._unclaimed.discard)

    async def _give_back(self, runner: ShellRunner, home: _Connection) -> None:
        """``runner`` is done with its command: idle again, or closed if it failed. Idle,
        it may be closed for room unless it is its connection's last (kept to settle)."""
        if runner.broken or home.connection.is_closed():
            await self._retire(runner, home)
            return
        async with self._slots.changed:
            home.idle.append(runner)
            if len(home.runners) > 1:
                self._slots.idle[runner] = lambda: self._retire(runner, home)
            self._slots.changed.notify()

    async def _retire(self, runner: ShellRunner, home: _Connection) -> None:
        """Close ``runner`` and free its slot."""
        if runner not in home.runners:
            return
        home.runners.remove(runner)
        if runner in home.idle:
            home.idle.remove(runner)
        self._slots.idle.pop(runner, None)
        try:
            with contextlib.suppress(asyncssh.Error, OSError):
                await runner.close()
        finally:
            self._closed_one(home)
            await self._release_slot()

    def _starting(self) -> bool:
        """Whether streams are to go to the OpenSSH master, which does not run yet, and
        may go through asyncssh meanwhile (``streams = "auto"``)."""
        master = self._master
        return (
            self.options.streams == "auto"
            and self._master_wanted
            and (master is None or not master.running)
        )

    @property
    def hands_over_files(self) -> bool:
        """Whether streams go to the OpenSSH master (when it has room), which reads and
        writes local files itself."""
        return self._master_wanted

    @contextlib.asynccontextmanager
    async def stream(
        self, command: str, path: str, *, stdin: int | None = None, stdout: int | None = None
    ) -> AsyncIterator[Stream]:
        """``command`` running on the node for the block, on the OpenSSH master when it has
        room, else on an asyncssh channel; one channel slot held either way. With
        ``stdin``, an open local file, a session of the master reads its input from it
        itself (see :meth:`~streamflow_data.shell.Stream.feed`); with ``stdout``, it
        writes its output there (:meth:`~streamflow_data.shell.Stream.pour`)."""
        async with contextlib.AsyncExitStack() as stack:
            with translating(self.location, path):
                raw = await stack.enter_async_context(self._stream(command, stdin, stdout))
            yield TranslatedStream(raw, self.location, path)

    @contextlib.asynccontextmanager
    async def _stream(
        self, command: str, stdin: int | None = None, stdout: int | None = None
    ) -> AsyncIterator[Stream]:
        """:meth:`stream` with the clients' own failures."""
        async with self._slot():
            on_master = await self._on_master(in_c_locale(command), stdin, stdout)
            if on_master is not None:
                master, opened = on_master
                try:
                    yield opened
                finally:
                    master.sessions -= 1
                return
            async with self._connection() as connection:
                process = await _open_process(connection, command)
                self.streams.asyncssh += 1
                yield AsyncsshStream(process)

    async def _on_master(
        self, command: str, stdin: int | None, stdout: int | None
    ) -> tuple[OpenSSHMaster, Stream] | None:
        """``command`` in a session of the master, or None for asyncssh: streams do not use
        the master, or it is full (its own session is one of ``max_sessions``)."""
        master = await self._openssh()
        piped = stdin is None and stdout is None
        if master is None or not await self._room_on_master(master, piped=piped):
            return None
        master.sessions += 1  # taken before the wait, so that others see it
        try:
            opened = await master.open(command, stdin, stdout)
        except ConnectorError as exc:
            master.sessions -= 1
            if self.options.streams == "openssh":
                raise
            await self._pick()  # raises when asyncssh cannot reach the node either
            logger.warning("%s: streams use asyncssh, ssh failed: %s", self.location, exc)
            await self._drop_master()
            return None
        except BaseException:
            master.sessions -= 1
            raise
        self.streams.openssh += 1
        self.streams.spare += opened.spare
        self.streams.peak_openssh = max(self.streams.peak_openssh, master.sessions)
        return master, opened

    async def _room_on_master(self, master: OpenSSHMaster, *, piped: bool) -> bool:
        """Whether the master can take one more stream (see
        :meth:`~streamflow_data_ssh.openssh.OpenSSHMaster.make_room`), after closing its
        idle streams if need be: a stream moved to asyncssh would cost this process the
        encryption."""
        while not await master.make_room(piped=piped):
            idle = next((s for s in self._slots.idle if _on_master(s)), None)
            if idle is None:
                return False
            await self._slots.idle.pop(idle)()
        return True

    async def _openssh(self) -> OpenSSHMaster | None:
        """The node's OpenSSH master (not yet started), or None when streams use asyncssh."""
        if self._master is None and self._master_wanted:
            program = await asyncio.to_thread(find_ssh)
            if self._master is not None:  # another stream made it meanwhile
                return self._master
            if program is None:
                if self.options.streams == "openssh":
                    raise ConfigurationError("streams = 'openssh' needs the ssh program on PATH")
                self._master_wanted = False
            else:
                self._master = OpenSSHMaster(
                    program, self.node, self.options, self.location, self._spares_wanted
                )
        return self._master

    async def _drop_master(self) -> None:
        master, self._master, self._master_wanted = self._master, None, False
        if master is not None:
            await master.close()

    # -- commands ---------------------------------------------------------------------------

    async def run(
        self, command: str, path: str, data: Buffer | Sequence[Buffer] = b""
    ) -> Completed:
        """Run ``command`` with ``data`` (or its pieces, in turn) on its standard input.

        A dropped connection is retried with back-off (the shell connector's commands may
        run again: they check before they change, and publish by renaming).
        """
        pieces = [data] if isinstance(data, bytes | memoryview) else data

        async def once() -> Completed:
            size = sum(len(piece) for piece in pieces)
            if size >= _STREAMED_INPUT and (size >= _WAIT_FOR_MASTER or not self._starting()):
                async with self._stream(command) as stream:
                    await stream.send_pieces(pieces)
                    return await stream.finish()
            runner, home = await self._take_runner()
            self.commands_run += 1
            try:
                return await runner.run(wire(in_c_locale(command)), pieces)
            finally:
                await self._give_back(runner, home)

        return await self._retrying(path, once)

    async def run_for_output(self, command: str, path: str) -> Completed:
        """Run ``command`` for a large output, on the OpenSSH master when it has room:
        its C cipher, not asyncssh's packets in Python (retried as :meth:`run` is). While
        the master starts, on a command runner: the output of a batch is not worth
        waiting for it."""
        if self._starting():
            return await self.run(command, path)

        async def once() -> Completed:
            async with self._stream(command) as stream:
                return await stream.finish()

        return await self._retrying(path, once)

    async def _retrying(self, path: str, once: Callable[[], Awaitable[Completed]]) -> Completed:
        attempt = 0
        while True:
            try:
                return await once()
            except (asyncssh.Error, OSError) as exc:
                error = translate(exc, self.location, path)
                if not (error.retryable and attempt < self.options.retries):
                    raise error from exc
                attempt += 1
                await asyncio.sleep(self.options.retry_wait(attempt))

    async def close(self) -> None:
        """Close every connection; the pool is unusable afterwards."""
        async with self._connecting:
            self._closed = True
            connections, self._connections = self._connections, []
        starting = [t for t in (self._warming, *self._unclaimed) if t is not None]
        for task in starting:
            task.cancel()
        if starting:
            await asyncio.wait(starting)
        await self._drop_master()
        for connection in connections:
            connection.connection.close()
        for connection in connections:
            with contextlib.suppress(Exception):
                await connection.connection.wait_closed()


def _on_master(stream: object) -> bool:
    """Whether ``stream`` (as the pool handed it out) is a session of the master."""
    return isinstance(stream, TranslatedStream) and isinstance(stream.inner, OpenSSHStream)


def _acknowledge_at_once(connection: asyncssh.SSHClientConnection) -> None:
    """Have Linux acknowledge what the node sends next at once (``TCP_QUICKACK``), not
    up to 40 ms later. After a login, sshd sends a few small messages, then its answer to
    the first channel request; Nagle's algorithm, which sshd leaves on unless a session
    has a terminal, holds that answer until the messages before it are acknowledged, and
    a client that has just sent a request of its own delays its acknowledgements: each
    connection's first channel took 45 ms to open instead of 3."""
    option = getattr(socket, "TCP_QUICKACK", None)
    sock = connection.get_extra_info("socket")
    if option is not None and sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, option, 1)


def tcp_round_trip(sock: socket.socket | None) -> float | None:
    """The kernel's smoothed round-trip time of a TCP socket in seconds (Linux
    ``TCP_INFO``), or None where it is not available."""
    if sock is None or not hasattr(socket, "TCP_INFO"):
        return None
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)
    except OSError:
        return None
    if len(info) < _TCP_RTT_OFFSET + 4:
        return None
    microseconds: int = struct.unpack_from("=I", info, _TCP_RTT_OFFSET)[0]
    return microseconds / 1e6


def _passphrase(path: str | None) -> str | None:
    """The passphrase kept in ``path`` (blocking: it reads the file), if one is named."""
    if path is None:
        return None
    with open(path, encoding="utf-8") as file:
        return file.read().strip()
