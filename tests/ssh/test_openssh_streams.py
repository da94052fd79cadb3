"""Byte streams through the OpenSSH client's master connection, and the fall-back to asyncssh."""

from __future__ import annotations

import asyncio
import contextlib
import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest
from streamflow_data_ssh import SSHConnector, pool
from streamflow_data_ssh.channels import OpenSSHStream
from streamflow_data_ssh.openssh import _SPARE_COMMAND, OpenSSHMaster

from streamflow_data import (
    ConfigurationError,
    DefaultDataManager,
    ExecutionLocation,
    LocalConnector,
    LocationUnreachableError,
    TransferError,
    Verification,
)
from streamflow_data.connectors.base import WriteItem
from streamflow_data.shell import connector as shell_connector
from streamflow_data.shell import handover
from streamflow_data.shell.reader import ShellReader
from tests.helpers import LastSnapshot
from tests.ssh.conftest import LOCAL, SMALL_CHUNKS, OptionsFactory, directed, round_trip
from tests.ssh.sshd import SSHServer, login_user, slow_login_user

T = TypeVar("T")

_SIZE = 5 * (1 << 20) + 321
"""Five chunks and a bit: parallel lanes, more than the master has room for."""


def _processes() -> Iterator[tuple[int, list[bytes]]]:
    """Each process of this machine, with its arguments (the tests' sshd run here)."""
    for entry in filter(str.isdigit, os.listdir("/proc")):
        with contextlib.suppress(OSError), open(f"/proc/{entry}/cmdline", "rb") as cmdline:
            yield int(entry), cmdline.read().split(b"\0")


def masters(port: int) -> list[int]:
    """PIDs of OpenSSH master processes connected to ``port``."""
    return [
        pid
        for pid, argv in _processes()
        if b"ControlMaster=yes" in argv and str(port).encode() in argv
    ]


async def _until(probe: Callable[[], T | None], failure: str) -> T:
    """The first answer of ``probe`` (run in a thread: it reads ``/proc``) that is not
    None, asked every 10 ms; ``failure`` is raised after 5 s."""
    for _ in range(500):  # bounded: 5 s
        if (found := await asyncio.to_thread(probe)) is not None:
            return found
        await asyncio.sleep(0.01)
    raise AssertionError(failure)


def _ssh_first_on_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, script: str) -> Path:
    """A shell ``script`` installed as ``ssh`` in a directory put first on PATH."""
    directory = tmp_path / "bin"
    directory.mkdir()
    program = directory / "ssh"
    program.write_text(f"#!/bin/sh\n{script}\n")
    program.chmod(0o755)
    monkeypatch.setenv("PATH", f"{directory}:{os.environ['PATH']}")
    return program


@pytest.fixture
def fake_ssh(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An ``ssh`` first on PATH that fails as OpenSSH does when it cannot connect."""
    script = "echo 'ssh: cannot connect: broken client' >&2\nexit 255"
    return _ssh_first_on_path(tmp_path, monkeypatch, script)


@pytest.fixture
def ssh_ignoring_term(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The real ``ssh``, first on PATH, started with SIGTERM ignored (as under a parent
    that ignores it): OpenSSH then keeps ignoring it."""
    real = shutil.which("ssh")
    assert real is not None
    _ssh_first_on_path(tmp_path, monkeypatch, f"trap '' TERM\nexec {real} \"$@\"")


@pytest.fixture
def long_link(monkeypatch: pytest.MonkeyPatch) -> None:
    """Chunks in parallel, as over a link whose round trip needs several streams (on
    loopback one stream is enough, and chunks go one at a time)."""
    monkeypatch.setattr(pool, "_ROUND_TRIP_PER_STREAM", 1e-9)


async def _manager(connector: SSHConnector) -> DefaultDataManager:
    return DefaultDataManager({"local": LocalConnector(), "ssh": connector}, settings=SMALL_CHUNKS)


@pytest.fixture
async def openssh(
    ssh_options: OptionsFactory, ssh_servers: list[SSHServer]
) -> AsyncIterator[SSHConnector]:
    connector = SSHConnector(ssh_options(ssh_servers[:1], streams="openssh", max_sessions=3))
    yield connector
    await connector.close()


@pytest.mark.usefixtures("long_link")
async def test_big_files_stream_through_one_master_within_the_session_limit(
    openssh: SSHConnector,
    ssh_servers: list[SSHServer],
    remote_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Ranges of 1 MiB both ways, four at once: those the master has no room for go
    through asyncssh, read or written here."""
    monkeypatch.setattr(handover, "RANGE_SIZE", 1 << 20)
    [host] = openssh.locations("ssh")
    manager = await _manager(openssh)
    await round_trip(manager, host, remote_dir, tmp_path, _SIZE)
    counts = openssh.streams_opened(host)
    assert counts.openssh >= 2 and counts.asyncssh > 0  # parallel ranges overflow to asyncssh
    assert counts.peak_openssh == 2  # max_sessions 3, one of them the master's own
    assert len(await asyncio.to_thread(masters, ssh_servers[0].port)) == 1
    await manager.close()
    assert await asyncio.to_thread(masters, ssh_servers[0].port) == []


async def test_idle_streams_on_the_master_make_room_before_asyncssh_is_used(
    openssh: SSHConnector, remote_dir: Path
) -> None:
    """A write where no stream stands needs a new one; with the master full of idle
    streams, one of them is closed for it instead of the bytes going through asyncssh."""
    [host] = openssh.locations("ssh")
    mib = 1 << 20
    data = os.urandom(4 * mib)
    path = remote_dir / "tiled"
    async with await openssh.open_writer(host, str(path)) as writer:
        for start in (1, 3, 0, 2):  # the first two fill the master; each later one evicts
            await writer.write(start * mib, data[start * mib : (start + 1) * mib])
        await writer.commit()
    counts = openssh.streams_opened(host)
    assert (counts.openssh, counts.asyncssh, counts.peak_openssh) == (4, 0, 2)
    assert await asyncio.to_thread(path.read_bytes) == data


async def _upload(
    manager: DefaultDataManager, host: ExecutionLocation, tmp_path: Path, dst: Path
) -> bytes:
    blob = tmp_path / "blob"
    data = os.urandom(_SIZE)
    await asyncio.to_thread(blob.write_bytes, data)
    manager.register_path(LOCAL, str(blob))
    await manager.transfer_data(LOCAL, str(blob), [host], str(dst))
    return data


@pytest.mark.usefixtures("long_link")  # where ranges go in parallel
async def test_a_local_file_goes_to_the_master_a_session_per_range_of_chunks(
    ssh_options: OptionsFactory,
    ssh_servers: list[SSHServer],
    remote_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(handover, "RANGE_SIZE", 2 << 20)  # 2 chunks of 1 MiB
    connector = SSHConnector(ssh_options(ssh_servers[:1], streams="openssh", max_sessions=10))
    [host] = connector.locations("ssh")
    manager = await _manager(connector)
    try:
        data = await _upload(manager, host, tmp_path, remote_dir / "up")
        counts = connector.streams_opened(host)
        assert (counts.openssh, counts.asyncssh) == (3, 0)  # 6 chunks, 2 per range
        assert await asyncio.to_thread((remote_dir / "up").read_bytes) == data
        assert manager.statistics.of(LOCAL).bytes_read == _SIZE  # once, for the checksum
    finally:
        await manager.close()


@pytest.mark.parametrize(
    ("lead", "route"),
    [(1 << 30, Verification.SIZE), (1 << 20, Verification.SENT)],
    ids=["handed to each master", "larger than the lead: blocks"],
)
async def test_a_local_file_goes_to_every_hosts_master_read_here_once(
    ssh_options: OptionsFactory,
    ssh_servers: list[SSHServer],
    remote_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    lead: int,
    route: Verification,
) -> None:
    """Two hosts: each master reads the file itself (its copy is checked by its size,
    as for one host), and this process reads it once, for the chunks' checksums. A file
    larger than the checksum's lead goes by blocks (the masters' paces may differ)."""
    monkeypatch.setattr(shell_connector, "CRC_LEAD", lead)
    connector = SSHConnector(ssh_options(ssh_servers, streams="openssh"))
    hosts = connector.locations("ssh")
    finished = LastSnapshot()
    connectors = {"local": LocalConnector(), "ssh": connector}
    async with DefaultDataManager(
        connectors, settings=SMALL_CHUNKS, listeners=[finished]
    ) as manager:
        blob = tmp_path / "blob"
        data = os.urandom(_SIZE)
        await asyncio.to_thread(blob.write_bytes, data)
        manager.register_path(LOCAL, str(blob))
        await manager.transfer_data(LOCAL, str(blob), hosts, str(remote_dir / "up"))
        assert manager.statistics.of(LOCAL).bytes_read == _SIZE
        for host in hosts:
            counts = connector.streams_opened(host)
            assert (counts.openssh, counts.asyncssh) == (1, 0)
    assert finished.last is not None
    assert [d.verification for d in finished.last.destinations] == [route] * 2
    assert await asyncio.to_thread((remote_dir / "up").read_bytes) == data  # one disk


@pytest.mark.usefixtures("long_link")
async def test_ranges_a_full_master_cannot_take_read_the_file_here(
    openssh: SSHConnector, remote_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Four ranges at once, room for two sessions: the others read the file here and
    send it through asyncssh."""
    monkeypatch.setattr(handover, "RANGE_SIZE", 1 << 20)
    [host] = openssh.locations("ssh")
    manager = await _manager(openssh)
    data = await _upload(manager, host, tmp_path, remote_dir / "up")
    counts = openssh.streams_opened(host)
    assert counts.openssh >= 2 and counts.asyncssh > 0
    assert await asyncio.to_thread((remote_dir / "up").read_bytes) == data


@pytest.mark.usefixtures("long_link")
async def test_ranges_a_full_master_cannot_take_are_written_here(
    openssh: SSHConnector, remote_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Downloads likewise: the ranges without a session of the master come through
    asyncssh and are written into the local file here."""
    monkeypatch.setattr(handover, "RANGE_SIZE", 1 << 20)
    [host] = openssh.locations("ssh")
    data = os.urandom(_SIZE)
    await asyncio.to_thread((remote_dir / "blob").write_bytes, data)
    manager = await _manager(openssh)
    manager.register_path(host, str(remote_dir / "blob"))
    await manager.transfer_data(host, str(remote_dir / "blob"), [LOCAL], str(tmp_path / "back"))
    counts = openssh.streams_opened(host)
    assert counts.openssh >= 2 and counts.asyncssh > 0
    assert await asyncio.to_thread((tmp_path / "back").read_bytes) == data


@pytest.mark.parametrize(
    ("streams", "verify", "direct"),
    [("openssh", "none", True), ("asyncssh", "none", True), ("openssh", "sha256", False)],
)
async def test_downloads_skip_the_blocks_unless_every_byte_is_to_be_checked(
    ssh_options: OptionsFactory,
    ssh_servers: list[SSHServer],
    remote_dir: Path,
    streams: str,
    verify: str,
    direct: bool,
) -> None:
    """Either client pours a download into the local file (``ssh`` writes it itself,
    asyncssh's bytes are written here as they come); with ``verify = "sha256"`` every
    block goes through the engine to be checked."""
    connector = SSHConnector(ssh_options(ssh_servers[:1], streams=streams, verify=verify))
    [host] = connector.locations("ssh")
    await asyncio.to_thread((remote_dir / "blob").write_bytes, b"x")
    try:
        async with await connector.open_reader(host, str(remote_dir / "blob")) as reader:
            assert isinstance(reader, ShellReader)
            assert reader.pours is direct
    finally:
        await connector.close()


async def test_batches_do_not_wait_for_the_master_to_start(
    ssh_options: OptionsFactory,
    ssh_servers: list[SSHServer],
    remote_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """While the master starts (a connection, a login, a session of its own), a batch of
    small files, written or read, goes through a command runner (``streams = "auto"``;
    ``"openssh"`` waits for it); once it runs, through a session of it."""
    release = asyncio.Event()
    start = OpenSSHMaster._start

    async def held(master: OpenSSHMaster) -> None:
        await release.wait()
        await start(master)

    monkeypatch.setattr(OpenSSHMaster, "_start", held)
    connector = SSHConnector(ssh_options(ssh_servers[:1], streams="auto", max_sessions=3))
    [host] = connector.locations("ssh")
    data = os.urandom(1 << 20)  # a batch large enough to go as a stream
    early = WriteItem(str(remote_dir / "early"), data)
    late = WriteItem(str(remote_dir / "late"), data)
    try:
        await connector.stat(host, "/")  # the connection: the master starts beside it
        assert await asyncio.wait_for(connector.write_files(host, [early]), 10) == [None]
        assert await asyncio.wait_for(connector.read_files(host, [early.path]), 10) == [data]
        assert connector.streams_opened(host).openssh == 0
        release.set()
        async with connector.transport(host).stream("true", "/") as stream:  # once it runs
            await stream.finish()
        assert await connector.write_files(host, [late]) == [None]
        assert await connector.read_files(host, [late.path]) == [data]
        assert connector.streams_opened(host).openssh == 3
    finally:
        await connector.close()


@pytest.mark.parametrize(("login", "fewest", "most"), [(0.0, 3, 4), (0.4, 7, 11)])
async def test_batches_read_at_once_hide_a_sessions_start_up(
    ssh_options: OptionsFactory,
    ssh_servers: list[SSHServer],
    login: float,
    fewest: int,
    most: int,
) -> None:
    """Batches of small files read at once: unsaid before the first connection; then a
    few where a session starts at once, more where its login shell takes 0.4 s (each
    batch is a session that pays it)."""
    if login and os.geteuid() != 0:
        pytest.skip("a user with a slow login shell is made as root")
    user = slow_login_user(login) if login else login_user()
    connector = SSHConnector(ssh_options(ssh_servers[:1], username=user))
    [host] = connector.locations("ssh")
    try:
        assert connector.batch_streams(host) is None
        await connector.stat(host, "/")
        assert fewest <= (connector.batch_streams(host) or 0) <= most
    finally:
        await connector.close()


async def test_one_stream_per_file_on_a_link_with_a_short_round_trip(
    openssh: SSHConnector, remote_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On loopback a chunk's stream fills the link: the chunks of a file take turns, in
    one lane that moves on from chunk to chunk, and the whole upload is one range (ranges
    at once would also queue on the file's lock on the host)."""
    monkeypatch.setattr(handover, "RANGE_SIZE", 2 << 20)  # 3 ranges, were they parallel
    [host] = openssh.locations("ssh")
    assert openssh.chunk_streams(host) is None  # not connected yet
    manager = await _manager(openssh)
    data = await _upload(manager, host, tmp_path, remote_dir / "up")
    assert openssh.chunk_streams(host) == 1  # the kernel's round trip: under 2 ms
    back = tmp_path / "back"
    manager.register_path(host, str(remote_dir / "up"))
    await manager.transfer_data(host, str(remote_dir / "up"), [LOCAL], str(back))
    assert await asyncio.to_thread(back.read_bytes) == data
    counts = openssh.streams_opened(host)
    # A range each way; no read past the end: the size the host told when the file was
    # opened says whether it grew.
    assert (counts.openssh, counts.asyncssh) == (2, 0)


def _sessions(port: int, *, spare: bool = False) -> list[int]:
    """PIDs of ``ssh`` processes running a session on the master of ``port``: those
    running a command, or with ``spare`` those waiting for one."""
    return [
        pid
        for pid, argv in _processes()
        if b"ControlMaster=no" in argv
        and str(port).encode() in argv
        and (_SPARE_COMMAND.encode() in argv) == spare
    ]


def _waiting_shells() -> list[int]:
    """PIDs of the shells of spare sessions on this machine's hosts waiting for their
    command: the sessions that have logged in."""
    return [
        pid
        for pid, argv in _processes()
        if argv[:2] == [b"sh", b"-c"] and b"IFS= read -r n" in argv[2]
    ]


async def _spares(port: int, count: int) -> list[int]:
    """The spare sessions on the master of ``port``, once ``count`` have logged in."""

    def logged_in() -> list[int] | None:
        found = _sessions(port, spare=True)
        return found if count <= len(found) <= len(_waiting_shells()) else None

    return await _until(logged_in, f"fewer than {count} spare sessions logged in after 5 s")


async def _gone(port: int, pids: list[int]) -> None:
    """Once the spare sessions ``pids`` on the master of ``port`` have exited."""
    await _until(
        lambda: None if set(pids) & set(_sessions(port, spare=True)) else True,
        f"processes {pids} still run after 5 s",
    )


async def test_piped_streams_run_in_spare_sessions_logged_in_beforehand(
    ssh_options: OptionsFactory, ssh_servers: list[SSHServer]
) -> None:
    """A stream on pipes runs in a spare session of the master, whose login shell ran
    before the command came: the command (lines, 100 KiB of them) and then the input
    reach the host whole, and the output, the errors and the status come back. Spares
    whose session ended on the host are passed over; those left end with the connector."""
    server = ssh_servers[0]
    # Three spares and no more, whatever the pool learns of the login's time: a fourth,
    # logging in while the others are counted, would be killed below without being
    # waited for, and taken while its ssh still runs.
    options = ssh_options([server], streams="openssh", spare_sessions=3)
    connector = SSHConnector(options)
    [host] = connector.locations("ssh")
    transport = connector.transport(host)
    data = os.urandom((1 << 20) + 1)
    command = f": {'x' * (100 << 10)}\nwc -c\necho said >&2\nexit 3"
    try:
        async with transport.stream("true", "/") as stream:  # the master, then its spares
            await stream.finish()
        await _spares(server.port, 3)
        async with transport.stream(command, "/") as stream:
            await stream.send_pieces([data])
            result = await stream.finish()
        assert (result.status, result.stdout, result.stderr) == (3, b"1048577\n", "said\n")
        assert connector.streams_opened(host).spare == 1
        ended = await _spares(server.port, 3)
        for pid in await asyncio.to_thread(_waiting_shells):  # their sessions end
            os.kill(pid, signal.SIGKILL)
        await _gone(server.port, ended)
        async with transport.stream("cat", "/") as stream:
            await stream.send_pieces([data])
            assert (await stream.finish()).stdout == data
    finally:
        await connector.close()
    assert await asyncio.to_thread(_sessions, server.port, spare=True) == []


def test_a_session_whose_ssh_closed_its_output_is_not_running() -> None:
    """The end of its output pipe tells that a session's ``ssh`` exited, before the loop
    has collected its exit status."""

    class Exiting:
        returncode = None

    output, end = os.pipe()
    stream = OpenSSHStream(Exiting(), None, output)  # type: ignore[arg-type]
    try:
        assert stream.running
        os.write(end, b"login message")  # a login shell may print: still running
        assert stream.running
        os.close(end)
        assert not stream.running
    finally:
        os.close(output)


async def test_spare_sessions_give_way_to_the_streams_of_local_files(
    ssh_options: OptionsFactory, ssh_servers: list[SSHServer], remote_dir: Path, tmp_path: Path
) -> None:
    """The master starts with spare sessions; a big file's streams, which the master reads
    or writes on a local file, close them; the next stream on pipes brings them back."""
    server = ssh_servers[0]
    connector = SSHConnector(ssh_options([server], streams="openssh"))
    [host] = connector.locations("ssh")
    manager = await _manager(connector)
    try:
        await connector.stat(host, "/")  # the connection: the master starts beside it
        await _spares(server.port, 3)
        await round_trip(manager, host, remote_dir, tmp_path, _SIZE)
        assert await asyncio.to_thread(_sessions, server.port, spare=True) == []
        async with connector.transport(host).stream("true", "/") as stream:
            await stream.finish()
        await _spares(server.port, 3)
    finally:
        await manager.close()


async def test_closing_does_not_wait_for_spare_sessions_to_log_in(
    ssh_options: OptionsFactory, ssh_servers: list[SSHServer]
) -> None:
    """A spare session started just before the connector closes is still in its login
    shell (3 s here): the close ends it with the master, without waiting for the host to
    close it after the login, and leaves no session."""
    if os.geteuid() != 0:
        pytest.skip("a user with a slow login shell is made as root")
    server = ssh_servers[0]
    options = ssh_options([server], username=slow_login_user(3.0), streams="openssh")
    connector = SSHConnector(options)
    [host] = connector.locations("ssh")
    transport = connector.transport(host)
    try:
        async with transport.stream("true", "/") as stream:  # the master, then its spares
            await stream.finish()
        await _spares(server.port, 3)
        async with transport.stream("true", "/") as stream:  # a spare: another starts
            await stream.finish()
    finally:
        started = time.monotonic()
        await connector.close()
        closing = time.monotonic() - started
    assert closing < 1.5  # not the 3 s login of the spare started last
    assert await asyncio.to_thread(_sessions, server.port) == []
    assert await asyncio.to_thread(_sessions, server.port, spare=True) == []


async def test_no_spare_sessions_when_none_are_wanted(
    ssh_options: OptionsFactory, ssh_servers: list[SSHServer]
) -> None:
    """``spare_sessions = 0``: every stream opens its own session."""
    server = ssh_servers[0]
    connector = SSHConnector(ssh_options([server], streams="openssh", spare_sessions=0))
    [host] = connector.locations("ssh")
    try:
        for _ in range(2):
            async with connector.transport(host).stream("cat", "/") as stream:
                await stream.send_pieces([b"x"])
                assert (await stream.finish()).stdout == b"x"
        assert await asyncio.to_thread(_sessions, server.port, spare=True) == []
        assert connector.streams_opened(host).spare == 0
    finally:
        await connector.close()


@pytest.mark.parametrize("direction", ["up", "down"])
async def test_a_cancelled_transfer_stops_the_sessions_moving_the_file(
    ssh_options: OptionsFactory,
    ssh_servers: list[SSHServer],
    remote_dir: Path,
    tmp_path: Path,
    direction: str,
) -> None:
    """Sessions of the master that read the local file (an upload) or write it (a
    download) end with the transfer, which leaves nothing."""
    server = ssh_servers[0]
    connector = SSHConnector(ssh_options([server], streams="openssh", max_sessions=10))
    [host] = connector.locations("ssh")
    here, there = tmp_path / "here", remote_dir
    await asyncio.to_thread(here.mkdir)
    blob, target, source, destination = directed(direction, here, there, host)
    await asyncio.to_thread(blob.write_bytes, os.urandom(64 << 20))
    manager = await _manager(connector)
    try:
        manager.register_path(source, str(blob))
        copy = asyncio.create_task(
            manager.transfer_data(source, str(blob), [destination], str(target))
        )
        await _until(lambda: _sessions(server.port) or None, "no session after 5 s")
        copy.cancel()
        with pytest.raises(asyncio.CancelledError):
            await copy
        assert await asyncio.to_thread(_sessions, server.port) == []
        assert await asyncio.to_thread(os.listdir, target.parent) == []
    finally:
        await manager.close()


async def test_the_master_starts_beside_the_first_connection(
    openssh: SSHConnector, ssh_servers: list[SSHServer], remote_dir: Path
) -> None:
    """A command (on asyncssh) connects the node, and the master starts meanwhile, so
    that the first stream finds it ready."""
    [host] = openssh.locations("ssh")
    await openssh.stat(host, str(remote_dir))
    await _until(lambda: masters(ssh_servers[0].port) or None, "no master after 5 s")
    assert len(await asyncio.to_thread(masters, ssh_servers[0].port)) == 1
    assert openssh.streams_opened(host).openssh == 0


async def test_closing_the_connector_while_its_master_starts_stops_it(
    ssh_options: OptionsFactory, ssh_servers: list[SSHServer], remote_dir: Path
) -> None:
    server = ssh_servers[1]
    connector = SSHConnector(ssh_options([server], streams="openssh"))
    [host] = connector.locations("ssh")
    await connector.stat(host, "/")
    await connector.close()  # the master takes about 0.2 s to start: it is still starting
    assert await asyncio.to_thread(masters, server.port) == []


async def test_closing_ends_a_master_that_does_not_act_on_sigterm(
    ssh_ignoring_term: None,
    ssh_options: OptionsFactory,
    ssh_servers: list[SSHServer],
    remote_dir: Path,
) -> None:
    """Closing does not depend on ssh acting on SIGTERM, which OpenSSH 9.2 was seen to
    miss while busy (closing its spare sessions' channels) until its next keep-alive,
    15 s later."""
    port = ssh_servers[0].port
    connector = SSHConnector(ssh_options(ssh_servers[:1], streams="openssh"))
    [host] = connector.locations("ssh")
    await connector.write_file(host, str(remote_dir / "f"), os.urandom(300_000))
    assert connector.streams_opened(host).openssh == 1
    closing = asyncio.create_task(connector.close())
    try:
        done, _ = await asyncio.wait([closing], timeout=10)  # bounded: "never" is the bug
        assert done, "close() still waits for the master after 10 s"
        assert await asyncio.to_thread(masters, port) == []
    finally:
        for pid in await asyncio.to_thread(masters, port):
            os.kill(pid, signal.SIGKILL)
        await closing


async def test_a_killed_master_is_started_again(
    openssh: SSHConnector, ssh_servers: list[SSHServer], remote_dir: Path, tmp_path: Path
) -> None:
    [host] = openssh.locations("ssh")
    await openssh.write_file(host, str(remote_dir / "warm"), os.urandom(300_000))  # streamed
    [first] = await asyncio.to_thread(masters, ssh_servers[0].port)
    os.kill(first, 9)
    manager = await _manager(openssh)
    try:
        await round_trip(manager, host, remote_dir, tmp_path, _SIZE)
        assert (await asyncio.to_thread(masters, ssh_servers[0].port)) not in ([], [first])
    finally:
        await manager.close()


async def test_the_spares_of_a_killed_master_are_passed_over(
    ssh_options: OptionsFactory, ssh_servers: list[SSHServer], caplog: pytest.LogCaptureFixture
) -> None:
    """Spare sessions end with their master: streams on pipes then run in new sessions,
    and the ended spares are closed without asyncio's warning of an unknown child (which
    killing them again would cause)."""
    server = ssh_servers[0]
    connector = SSHConnector(ssh_options([server], streams="openssh"))
    [host] = connector.locations("ssh")
    transport = connector.transport(host)
    try:
        async with transport.stream("true", "/") as stream:
            await stream.finish()
        ended = await _spares(server.port, 3)
        [master] = await asyncio.to_thread(masters, server.port)
        os.kill(master, signal.SIGKILL)
        await _gone(server.port, ended)
        for _ in range(4):
            async with transport.stream("cat", "/") as stream:
                await stream.send_pieces([b"data"])
                assert (await stream.finish()).stdout == b"data"
    finally:
        await connector.close()
    assert "Unknown child" not in caplog.text


async def test_auto_falls_back_to_asyncssh_when_ssh_cannot_connect(
    fake_ssh: Path,
    ssh_options: OptionsFactory,
    ssh_servers: list[SSHServer],
    remote_dir: Path,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    connector = SSHConnector(ssh_options(ssh_servers[:1]))
    [host] = connector.locations("ssh")
    manager = await _manager(connector)
    try:
        await round_trip(manager, host, remote_dir, tmp_path, _SIZE)
        counts = connector.streams_opened(host)
        assert counts.openssh == 0 and counts.asyncssh >= 2
        assert "streams use asyncssh, ssh failed" in caplog.text
        assert "broken client" in caplog.text
    finally:
        await manager.close()


async def test_openssh_streams_report_why_ssh_failed(
    fake_ssh: Path,
    ssh_options: OptionsFactory,
    ssh_servers: list[SSHServer],
    remote_dir: Path,
    tmp_path: Path,
) -> None:
    connector = SSHConnector(ssh_options(ssh_servers[:1], streams="openssh", retries=0))
    [host] = connector.locations("ssh")
    manager = await _manager(connector)
    blob = tmp_path / "blob"
    await asyncio.to_thread(blob.write_bytes, os.urandom(2 << 20))
    manager.register_path(LOCAL, str(blob))
    try:
        with pytest.raises(TransferError) as caught:
            await manager.transfer_data(LOCAL, str(blob), [host], str(remote_dir / "never"))
        cause = caught.value.failures[0].cause
        assert isinstance(cause, LocationUnreachableError)
        assert "broken client" in str(cause)
        assert not (remote_dir / "never").exists()
    finally:
        await manager.close()


async def test_openssh_streams_need_the_ssh_program(
    ssh_options: OptionsFactory,
    ssh_servers: list[SSHServer],
    remote_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    connector = SSHConnector(ssh_options(ssh_servers[:1], streams="openssh"))
    monkeypatch.setenv("PATH", str(tmp_path))
    [host] = connector.locations("ssh")
    try:
        with pytest.raises(ConfigurationError, match="needs the ssh program"):
            await connector.write_file(host, str(remote_dir / "f"), os.urandom(300_000))
    finally:
        await connector.close()


_ABANDON = """
import asyncio, json, os, sys
from streamflow_data_ssh import SSHConnector, SSHOptions

async def main():
    options = SSHOptions.model_validate(json.loads(sys.argv[1]))
    connector = SSHConnector(options)
    [host] = connector.locations("ssh")
    await connector.write_file(host, sys.argv[2], os.urandom(300_000))
    print("written", os.getpid(), flush=True)
    os._exit(0)  # no close(): the master is left behind

asyncio.run(main())
"""


async def test_a_master_left_by_a_dead_process_exits(
    ssh_options: OptionsFactory, ssh_servers: list[SSHServer], remote_dir: Path
) -> None:
    port = ssh_servers[0].port
    options = ssh_options(ssh_servers[:1], streams="openssh").model_dump_json()
    child = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-c", _ABANDON, options, str(remote_dir / "f")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    written, pid = child.stdout.split()
    assert written == "written", child.stderr
    for _ in range(100):  # at most 10 s
        if not await asyncio.to_thread(masters, port):
            break
        await asyncio.sleep(0.1)
    assert await asyncio.to_thread(masters, port) == []
    assert json.loads(options)["streams"] == "openssh"
    # Its socket's directory is left behind, until the next master starts.
    left = glob.glob(f"{tempfile.gettempdir()}/sfd-openssh-{pid}-*")
    assert len(left) == 1
    connector = SSHConnector(ssh_options(ssh_servers[:1], streams="openssh"))
    try:
        [host] = connector.locations("ssh")
        await connector.write_file(host, str(remote_dir / "g"), os.urandom(8 << 20))
        assert connector.streams_opened(host).openssh > 0
        assert not await asyncio.to_thread(os.path.exists, left[0])
    finally:
        await connector.close()
