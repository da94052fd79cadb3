"""The SSH connector against real sshd servers: configuration, errors, the pool, safety."""

from __future__ import annotations

import asyncio
import io
import logging
import os
import tarfile
import threading
import time
from pathlib import Path

import pytest
from streamflow_data_ssh import SSHConnector, SSHOptions
from streamflow_data_ssh.pool import NodePool

from streamflow_data import (
    AuthenticationError,
    ConfigurationError,
    DefaultDataManager,
    ExecutionLocation,
    LocalConnector,
    LocationUnreachableError,
    MetadataItem,
    PathNotFoundError,
    PermissionDeniedError,
    SourceChangedError,
    TransferError,
    UnsupportedOperationError,
    WriteItem,
    create_connector,
)
from streamflow_data.errors import ConnectorError
from streamflow_data.shell import Completed, HostTools
from streamflow_data.shell.packing import read_archive
from tests.ssh.conftest import LOCAL, OptionsFactory
from tests.ssh.sshd import (
    SSHServer,
    client_key,
    known_hosts,
    login_user,
    owned_directory,
    slow_login_user,
    start_server,
)


def test_options_name_every_mistake() -> None:
    with pytest.raises(ConfigurationError, match=r"nodes.*max_sessions"):
        SSHConnector.from_options({"nodes": [], "max_sessions": 0})
    with pytest.raises(ConfigurationError, match="share the location name"):
        SSHConnector.from_options({"nodes": ["h1:2222", {"hostname": "h1", "port": 2222}]})


def test_nodes_are_locations_of_the_deployment() -> None:
    connector = SSHConnector.from_options({"nodes": ["alpha", "beta:2200", {"hostname": "g"}]})
    names = [location.name for location in connector.locations("cluster")]
    assert names == ["alpha", "beta_2200", "g"]
    assert all(not location.local for location in connector.locations("cluster"))


def test_the_plugin_is_found_by_entry_point() -> None:
    connector = create_connector("ssh", {"nodes": ["example.org"]})
    assert isinstance(connector, SSHConnector)
    assert connector.options.check_host_keys and connector.options.ciphers[0].startswith("aes128")


async def test_an_unknown_host_key_is_refused(
    ssh_options: OptionsFactory, ssh_servers: list[SSHServer], tmp_path: Path
) -> None:
    strangers = tmp_path / "known_hosts"
    strangers.write_text(f"[127.0.0.1]:{ssh_servers[0].port} {ssh_servers[1].host_public_key}\n")
    connector = SSHConnector(ssh_options(ssh_servers[:1], known_hosts=str(strangers)))
    try:
        with pytest.raises(AuthenticationError, match="host-a"):
            await connector.stat(connector.locations("ssh")[0], "/")
    finally:
        await connector.close()
    unchecked = SSHConnector(
        ssh_options(ssh_servers[:1], known_hosts=str(strangers), check_host_keys=False)
    )
    try:
        assert (await unchecked.stat(unchecked.locations("ssh")[0], "/")).size == 0
    finally:
        await unchecked.close()


async def test_a_refused_key_is_an_authentication_error(
    ssh_options: OptionsFactory, ssh_servers: list[SSHServer], tmp_path: Path
) -> None:
    import asyncssh

    other = tmp_path / "other_key"
    await asyncio.to_thread(asyncssh.generate_private_key("ssh-ed25519").write_private_key, other)
    connector = SSHConnector(ssh_options(ssh_servers[:1], client_keys=[str(other)]))
    try:
        with pytest.raises(AuthenticationError, match="Permission denied"):
            await connector.stat(connector.locations("ssh")[0], "/")
    finally:
        await connector.close()


async def test_an_encrypted_key_is_opened_with_its_passphrase_file(
    ssh_base: Path, tmp_path: Path
) -> None:
    """The passphrase comes from a file, never into a message; the byte streams go
    through asyncssh, as ``ssh`` could not be given it."""
    import asyncssh

    key = ssh_base / f"encrypted_key_{os.getpid()}_{time.monotonic_ns()}"
    secret = "correct horse battery"
    generated = asyncssh.generate_private_key("ssh-ed25519")
    await asyncio.to_thread(generated.write_private_key, key, passphrase=secret)
    await asyncio.to_thread(generated.write_public_key, str(key) + ".pub")
    server = await asyncio.to_thread(start_server, "host-p", key.with_suffix(".d"), key)
    (tmp_path / "right").write_text(secret + "\n")
    (tmp_path / "wrong").write_text("not it\n")

    def options(passphrase: str) -> SSHOptions:
        return SSHOptions.model_validate(
            {
                "nodes": [{"hostname": "127.0.0.1", "port": server.port}],
                "username": login_user(),
                "client_keys": [str(key)],
                "passphrase_file": str(tmp_path / passphrase),
                "check_host_keys": False,
            }
        )

    try:
        connector = SSHConnector(options("right"))
        location = connector.locations("ssh")[0]
        try:
            manager = DefaultDataManager({"ssh": connector})
            await asyncio.to_thread((tmp_path / "blob").write_bytes, os.urandom(3 << 20))
            manager.register_path(LOCAL, str(tmp_path / "blob"))
            target = owned_directory(server.directory / "files") / "blob"
            await manager.transfer_data(LOCAL, str(tmp_path / "blob"), [location], str(target))
            assert connector.streams_opened(location).openssh == 0
            assert connector.streams_opened(location).asyncssh > 0
        finally:
            await connector.close()
        wrong = SSHConnector(options("wrong"))
        try:
            with pytest.raises(ConfigurationError) as raised:
                await wrong.stat(wrong.locations("ssh")[0], "/")
            assert secret not in str(raised.value) and "not it" not in str(raised.value)
        finally:
            await wrong.close()
    finally:
        server.stop()


async def test_an_unreadable_key_file_is_a_configuration_error(
    ssh_options: OptionsFactory, ssh_servers: list[SSHServer], tmp_path: Path
) -> None:
    connector = SSHConnector(ssh_options(ssh_servers[:1], client_keys=[str(tmp_path / "none")]))
    try:
        with pytest.raises(ConfigurationError, match="host-a"):
            await connector.stat(connector.locations("ssh")[0], "/")
    finally:
        await connector.close()


async def test_an_unreachable_host_is_retried_then_reported() -> None:
    import socket

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    options = SSHOptions.model_validate(
        {"nodes": [f"127.0.0.1:{port}"], "retries": 2, "retry_delay": 0.05}
    )
    connector = SSHConnector(options)
    started = time.monotonic()
    try:
        with pytest.raises(LocationUnreachableError, match="refused") as caught:
            await connector.stat(connector.locations("ssh")[0], "/")
    finally:
        await connector.close()
    assert caught.value.retryable
    assert time.monotonic() - started >= 0.05 + 0.1  # two back-offs: 0.05 s, then 0.1 s


async def test_an_unreachable_host_is_tried_once_per_transfer_not_once_per_operation(
    caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    """The engine retries each file, and a transfer asks several things of the host:
    while the pool's own attempts have just failed, they all get that answer at once."""
    import socket

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    options = {"nodes": [f"127.0.0.1:{port}"], "retries": 2, "retry_delay": 0.2}
    connector = SSHConnector(SSHOptions.model_validate(options))
    (tmp_path / "f").write_text("f")
    caplog.set_level(logging.INFO, logger="streamflow_data_ssh")
    async with DefaultDataManager({"local": LocalConnector(), "ssh": connector}) as manager:
        manager.register_path(LOCAL, str(tmp_path / "f"))
        with pytest.raises(TransferError):
            await manager.transfer_data(
                LOCAL, str(tmp_path / "f"), connector.locations("ssh"), "/x"
            )
    retries = [r for r in caplog.records if "retry in" in r.getMessage()]
    assert len(retries) == 2  # one connection's two retries, whatever asked after them


async def test_missing_paths_and_denied_writes_are_typed(
    ssh: SSHConnector, host_a: ExecutionLocation, remote_dir: Path, tmp_path: Path
) -> None:
    with pytest.raises(PathNotFoundError, match="nowhere"):
        await ssh.read_file(host_a, str(remote_dir / "nowhere"))
    with pytest.raises(PathNotFoundError):
        await ssh.open_reader(host_a, str(remote_dir / "nowhere"))
    if os.geteuid() != 0:
        pytest.fail("the permission test needs root, to own a directory the login user cannot")
    forbidden = tmp_path.parent / "root-only"  # root's 0755 directory: not writable by them
    forbidden.mkdir(mode=0o755, exist_ok=True)
    os.chmod(tmp_path.parent, 0o755)
    os.chmod(tmp_path.parent.parent, 0o755)
    try:
        with pytest.raises(PermissionDeniedError):
            await ssh.write_file(host_a, str(forbidden / "f"), b"data")
        with pytest.raises(PermissionDeniedError):
            await ssh.open_writer(host_a, str(forbidden / "f"))
        with pytest.raises(PermissionDeniedError):
            await ssh.mkdir(host_a, str(forbidden / "d"))
    finally:
        os.chmod(tmp_path.parent.parent, 0o700)


async def test_directories_get_the_users_umask_never_world_writable(
    ssh: SSHConnector, host_a: ExecutionLocation, remote_dir: Path
) -> None:
    await ssh.make_directories(host_a, [str(remote_dir / "a" / "b"), str(remote_dir / "c")])
    await ssh.write_file(host_a, str(remote_dir / "a" / "f"), b"x")
    for path in (remote_dir / "a", remote_dir / "a" / "b", remote_dir / "c"):
        assert not (await asyncio.to_thread(os.stat, path)).st_mode & 0o002
    assert not (await asyncio.to_thread(os.stat, remote_dir / "a" / "f")).st_mode & 0o022


async def test_metadata_of_more_directories_than_one_command_line_holds(
    ssh: SSHConnector, host_a: ExecutionLocation, remote_dir: Path
) -> None:
    """2,000 long names make a script over the 128 KiB a host takes in one argument."""
    names = [str(remote_dir / f"{index:04d}-{'n' * 80}") for index in range(2000)]
    await ssh.make_directories(host_a, names)
    items = [
        MetadataItem(name, mode=0o750 if index % 3 else 0o700, mtime_ns=index * 1_000_000_007)
        for index, name in enumerate(names)
    ]
    await ssh.apply_metadata(host_a, items)
    stats = await asyncio.to_thread(lambda: [os.stat(name) for name in names])
    assert [(s.st_mode & 0o7777, s.st_mtime_ns) for s in stats] == [
        (item.mode, item.mtime_ns) for item in items
    ]


async def test_metadata_of_directories_that_lose_their_permissions_deepest_first(
    ssh: SSHConnector, host_a: ExecutionLocation, remote_dir: Path
) -> None:
    """Set by one ``tar x`` as the host's unprivileged user: a parent made unreadable after
    its children still lets their times be set first."""
    top, inner = remote_dir / "top", remote_dir / "top" / "inner"
    await ssh.make_directories(host_a, [str(inner)])
    items = [
        MetadataItem(str(inner), mode=0o500, mtime_ns=1_000_000_001),
        MetadataItem(str(top), mode=0o100, mtime_ns=2_000_000_002),
    ]
    await ssh.apply_metadata(host_a, items)
    try:
        stats = await asyncio.to_thread(lambda: [os.stat(inner), os.stat(top)])
        assert [(s.st_mode & 0o7777, s.st_mtime_ns) for s in stats] == [
            (0o500, 1_000_000_001),
            (0o100, 2_000_000_002),
        ]
    finally:
        await asyncio.to_thread(os.chmod, top, 0o700)
        await asyncio.to_thread(os.chmod, inner, 0o700)


async def test_metadata_of_a_file_among_directories_leaves_the_file_a_file(
    ssh: SSHConnector, host_a: ExecutionLocation, remote_dir: Path
) -> None:
    await ssh.make_directories(host_a, [str(remote_dir / "d")])
    await ssh.write_file(host_a, str(remote_dir / "f"), b"kept")
    items = [
        MetadataItem(str(remote_dir / "f"), mode=0o600, mtime_ns=3_000_000_003),
        MetadataItem(str(remote_dir / "d"), mode=0o750, mtime_ns=4_000_000_004),
    ]
    await ssh.apply_metadata(host_a, items)
    stats = await asyncio.to_thread(lambda: [os.lstat(remote_dir / n) for n in ("f", "d")])
    assert [(s.st_mode, s.st_mtime_ns) for s in stats] == [
        (0o100600, 3_000_000_003),
        (0o040750, 4_000_000_004),
    ]
    assert await asyncio.to_thread((remote_dir / "f").read_bytes) == b"kept"


async def test_the_pool_never_exceeds_its_session_limit(
    ssh_options: OptionsFactory, ssh_servers: list[SSHServer]
) -> None:
    options = ssh_options(ssh_servers[:1], max_connections=2, max_sessions=2)
    connector = SSHConnector(options)
    location = connector.locations("ssh")[0]
    pool = NodePool(options.nodes[0], options, location)
    try:
        command = "date +%s%N; sleep 0.3; date +%s%N"
        started = time.monotonic()
        async with asyncio.TaskGroup() as group:
            runs = [group.create_task(pool.check(command, "")) for _ in range(8)]
        spans = [tuple(int(v) for v in run.result().split()) for run in runs]
        most = max(sum(1 for s, e in spans if s <= point < e) for point, _ in spans)
        assert most <= 4  # 2 connections x 2 sessions
        assert time.monotonic() - started >= 0.6  # 8 commands, 4 at a time, 0.3 s each
    finally:
        await pool.close()
        await connector.close()


async def test_a_dropped_connection_is_reestablished(
    ssh_options: OptionsFactory, ssh_servers: list[SSHServer], remote_dir: Path
) -> None:
    server = ssh_servers[1]
    connector = SSHConnector(ssh_options([server], retries=6, retry_delay=0.1))
    location = connector.locations("ssh")[0]
    try:
        await connector.write_file(location, str(remote_dir / "before"), b"1")
        await asyncio.to_thread(server.stop)
        with pytest.raises(LocationUnreachableError):
            await connector.write_file(location, str(remote_dir / "during"), b"2")
        await asyncio.to_thread(server.start)
        await connector.write_file(location, str(remote_dir / "after"), b"3")
        assert await connector.read_file(location, str(remote_dir / "after")) == b"3"
        assert not (remote_dir / "during").exists()
    finally:
        await connector.close()


async def test_a_host_without_a_hash_tool_gets_a_clear_error(
    ssh_options: OptionsFactory, ssh_servers: list[SSHServer], remote_dir: Path
) -> None:
    connector = SSHConnector(ssh_options(ssh_servers[:1], verify="sha256"))
    location = connector.locations("ssh")[0]
    connector._tools[location.name] = HostTools(0o022, hash_command=None, sha256sum=False)
    try:
        with pytest.raises(UnsupportedOperationError, match="openssl, sha256sum or shasum"):
            await connector.write_file(location, str(remote_dir / "f"), b"data")
    finally:
        await connector.close()


async def test_bulk_writes_refuse_names_that_leave_their_directory(
    ssh: SSHConnector, host_a: ExecutionLocation, remote_dir: Path
) -> None:
    items = [
        WriteItem(f"{remote_dir}/../escaped", b"x"),
        WriteItem(f"{remote_dir}/ok", b"y"),
    ]
    results = await ssh.write_files(host_a, items)
    assert isinstance(results[0], PermissionDeniedError) and results[1] is None
    assert not (remote_dir.parent / "escaped").exists()


async def test_a_bulk_write_larger_than_one_command_line_reports_every_file(
    ssh: SSHConnector, host_a: ExecutionLocation, remote_dir: Path
) -> None:
    """1,500 long names (over the 128 KiB a host takes in one argument), in directories
    that exist or not, and a file named like the directory of another: each file gets its
    own outcome, and nothing lands outside an existing directory."""
    await ssh.make_directories(host_a, [f"{remote_dir}/a", f"{remote_dir}/b"])
    long = "n" * 100
    items = [
        WriteItem(f"{remote_dir}/{'abc'[index % 3]}/{index:04d}-{long}", b"%d" % index)
        for index in range(1500)
    ]
    items += [  # written under their own names: excluding sub/ must not exclude sub
        WriteItem(f"{remote_dir}/a/sub/f", b"in sub", atomic=False),
        WriteItem(f"{remote_dir}/a/sub", b"sub", atomic=False),
    ]
    results = await ssh.write_files(host_a, items)
    for item, result in zip(items, results, strict=True):
        missing = item.path.startswith(f"{remote_dir}/c/") or item.path.endswith("/sub/f")
        if missing:
            assert isinstance(result, PathNotFoundError), item.path
        else:
            assert result is None, (item.path, result)
            assert await asyncio.to_thread(Path(item.path).read_bytes) == item.data
    assert not (remote_dir / "c").exists()
    assert sorted(os.listdir(remote_dir / "a")) == sorted(
        [Path(item.path).name for item in items[0:1500:3]] + ["sub"]
    )


def _archive(*members: tarfile.TarInfo) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for member in members:
            archive.addfile(member, io.BytesIO(b"x" * member.size))
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("name", "kind"),
    [("../etc/passwd", tarfile.REGTYPE), ("/etc/passwd", tarfile.REGTYPE), ("a", tarfile.SYMTYPE)],
)
def test_packed_streams_from_a_host_are_never_trusted(name: str, kind: bytes) -> None:
    location = ExecutionLocation("ssh", "h")
    member = tarfile.TarInfo(name)
    member.type = kind
    member.size = 1 if kind == tarfile.REGTYPE else 0
    member.linkname = "/etc/passwd"
    results = read_archive(location, ["/a"], Completed(0, _archive(member), ""))
    assert isinstance(results[0], ConnectorError) and "refused" in str(results[0])


async def test_stat_and_walk_answers_are_kept_until_a_write_or_their_ttl(
    ssh_options: OptionsFactory, remote_dir: Path
) -> None:
    connector = SSHConnector(ssh_options(metadata_ttl=1.0))
    host = connector.locations("ssh")[0]
    try:
        path = str(remote_dir / "f")
        await connector.write_file(host, path, b"one")
        opened = connector.commands_run(host)
        assert (await connector.stat(host, path)).size == 3
        assert [e.relpath async for e in connector.walk(host, str(remote_dir))] == ["f"]
        assert connector.commands_run(host) == opened + 2
        assert (await connector.stat(host, path)).size == 3  # kept: no round trip
        assert [e.relpath async for e in connector.walk(host, str(remote_dir))] == ["f"]
        assert connector.commands_run(host) == opened + 2
        await connector.write_file(host, str(remote_dir / "g"), b"three")  # through us
        assert [e.relpath async for e in connector.walk(host, str(remote_dir))] == ["f", "g"]
        await asyncio.to_thread((remote_dir / "f").write_bytes, b"changed by someone else")
        assert (await connector.stat(host, path)).size == 3  # not seen yet
        await asyncio.sleep(1.1)
        assert (await connector.stat(host, path)).size == 23  # expired
    finally:
        await connector.close()


@pytest.mark.parametrize("streams", [0, 12])
async def test_a_pool_at_the_servers_session_limit_is_never_refused_a_channel(
    ssh_base: Path, remote_dir: Path, streams: int
) -> None:
    """sshd counts a closed session until its loop collects it. Small commands share
    command runners, which keep their channels; a channel closed at the limit is reused
    only once a ping through a runner has proved it collected: sshd never logs "no more
    sessions", even with big files opening and closing channels beside 100 small ones."""
    directory = ssh_base / f"limited-{streams}"
    server = start_server("limited", directory, client_key(ssh_base), None, "MaxSessions 4\n")
    try:
        known_hosts([server], directory / "known_hosts")
        options = {
            "nodes": [{"hostname": "127.0.0.1", "port": server.port, "name": "limited"}],
            "username": login_user(),
            "client_keys": [str(ssh_base / "client_key")],
            "known_hosts": str(directory / "known_hosts"),
            "max_connections": 1,
            "max_sessions": 4,
            "retries": 0,
            "streams": "asyncssh",  # every stream a channel of the limited connection
        }
        connector = SSHConnector(SSHOptions.model_validate(options))
        [host] = connector.locations("ssh")
        big = os.urandom(300 * 1024)  # over the input a command is given whole
        try:
            results = await asyncio.gather(
                *(
                    connector.write_file(host, f"{remote_dir}/f{n}", b"x" * 4096)
                    for n in range(100)
                ),
                *(connector.write_file(host, f"{remote_dir}/b{n}", big) for n in range(streams)),
                return_exceptions=True,
            )
            opened = connector.channels_opened(host)
        finally:
            await connector.close()
        assert [r for r in results if r is not None] == []
        assert (remote_dir / "f99").read_bytes() == b"x" * 4096
        assert all((remote_dir / f"b{n}").read_bytes() == big for n in range(streams))
        if not streams:
            assert opened <= 4  # the runners, kept: nothing closed, nothing refused
    finally:
        server.stop()
    log = (directory / "sshd.log").read_text()
    assert "no more sessions" not in log, log


def _write_until(path: Path, stop: threading.Event) -> None:
    """Keep writing one byte into ``path`` in place, every millisecond, until ``stop``."""
    with path.open("r+b", buffering=0) as file:
        for number in range(100_000):  # bounded: about 100 s
            if stop.is_set():
                return
            file.seek(number % 1024 * 4096)
            file.write(b"x")
            time.sleep(0.001)


async def test_a_file_written_to_while_tar_reads_it_is_never_returned(
    ssh: SSHConnector, host_a: ExecutionLocation, remote_dir: Path
) -> None:
    """tar pads a file that shrank with zeros and only warns of one that changed: both
    are a SourceChangedError, never bytes."""
    path = remote_dir / "written"
    await asyncio.to_thread(path.write_bytes, os.urandom(64 * 1024 * 1024))
    stop = threading.Event()
    writer = asyncio.create_task(asyncio.to_thread(_write_until, path, stop))
    try:
        [content] = await ssh.read_files(host_a, [str(path)])
    finally:
        stop.set()
        await writer
    assert isinstance(content, SourceChangedError) and content.retryable
    assert str(content).endswith(": file changed as we read it")


@pytest.mark.parametrize("data", [b"", b"archive"])
async def test_input_refused_by_a_command_that_exited_leaves_its_status_to_wait(
    ssh: SSHConnector, host_a: ExecutionLocation, data: bytes
) -> None:
    """A check that fails before reading its input (metadata of a file among
    directories) has exited when the input is sent: the unread input is not the answer,
    the command's exit status is; and the runner that ran it runs the next command."""
    transport = ssh.transport(host_a)
    result = await transport.run("exit 7", "/", data)
    assert result.status == 7
    opened = ssh.channels_opened(host_a)
    assert (await transport.run("echo next", "/", data)).stdout == b"next\n"
    assert ssh.channels_opened(host_a) == opened


@pytest.fixture
def slow_login(ssh_options: OptionsFactory, ssh_servers: list[SSHServer]) -> SSHConnector:
    """A connector to one host whose login shell takes 1 s per session (no master)."""
    if os.geteuid() != 0:
        pytest.skip("a user with a slow login shell is made as root")
    user = slow_login_user(1.0)
    return SSHConnector(ssh_options(ssh_servers[:1], username=user, streams="asyncssh"))


async def test_a_command_takes_the_runner_that_frees_first_and_keeps_the_new_one(
    slow_login: SSHConnector,
) -> None:
    """Every runner busy: a command runs on the first of a runner that ends its command
    and a new runner, here the busy one (a new one logs in for 1 s); the new runner is
    kept, idle, and runs a later command without opening a channel."""
    [host] = slow_login.locations("ssh")
    transport = slow_login.transport(host)
    try:
        first = await transport.run("echo $PPID", "/")  # the first runner's shell
        busy = asyncio.create_task(transport.run("sleep 0.3; echo $PPID", "/"))
        await asyncio.sleep(0.1)
        quick = await transport.run("echo $PPID", "/")
        assert quick.stdout == (await busy).stdout == first.stdout
        opened = slow_login.channels_opened(host)
        assert opened == 2  # the first runner and the one started for the quick command
        await asyncio.sleep(1.5)  # that one has logged in
        shells = await asyncio.gather(
            *(transport.run("sleep 0.2; echo $PPID", "/") for _ in range(2))
        )
        assert len({shell.stdout for shell in shells}) == 2
        assert slow_login.channels_opened(host) == opened
    finally:
        await slow_login.close()


async def test_closing_while_a_runner_nobody_waits_for_logs_in(
    slow_login: SSHConnector,
) -> None:
    """A runner started for a command that took a freed one is still logging in when
    the connector closes: the close ends it, and nothing of the pool is left running."""
    [host] = slow_login.locations("ssh")
    transport = slow_login.transport(host)
    await transport.run("true", "/")
    busy = asyncio.create_task(transport.run("sleep 0.2", "/"))
    await asyncio.sleep(0.05)
    await transport.run("true", "/")
    await busy
    assert slow_login.channels_opened(host) == 2
    await asyncio.wait_for(slow_login.close(), 30)
    left = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
    assert [task for task in left if "NodePool" in repr(task.get_coro())] == []


async def test_a_warmed_up_node_runs_its_first_command_on_the_runner_started_for_it(
    slow_login: SSHConnector,
) -> None:
    """``warm_up`` connects and starts a runner that waits, idle: the first command runs
    in its shell and opens no channel; warming up a node that has a connection opens
    nothing more."""
    [host] = slow_login.locations("ssh")
    try:
        await slow_login.warm_up(host)
        assert slow_login.channels_opened(host) == 1
        assert slow_login.commands_run(host) == 0
        await slow_login.warm_up(host)
        shell = await slow_login.transport(host).run("echo $PPID", "/")
        assert shell.status == 0
        assert slow_login.channels_opened(host) == 1
    finally:
        await slow_login.close()


async def test_a_warm_up_cancelled_while_the_runner_logs_in_leaves_nothing_running(
    slow_login: SSHConnector,
) -> None:
    """A caller who warms up in the background cancels it when it stops: the runner
    logging in is ended and its slot freed, and the node still runs commands."""
    [host] = slow_login.locations("ssh")
    try:
        warming = asyncio.create_task(slow_login.warm_up(host))
        await asyncio.sleep(0.3)  # connected, the login shell still starting
        warming.cancel()
        with pytest.raises(asyncio.CancelledError):
            await warming
        assert (await slow_login.transport(host).run("echo ok", "/")).stdout == b"ok\n"
    finally:
        await asyncio.wait_for(slow_login.close(), 30)
    left = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
    assert [task for task in left if "NodePool" in repr(task.get_coro())] == []


async def test_warming_up_an_unreachable_host_raises_our_error() -> None:
    import socket

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    options = SSHOptions.model_validate({"nodes": [f"127.0.0.1:{port}"], "retries": 0})
    connector = SSHConnector(options)
    try:
        with pytest.raises(LocationUnreachableError, match="refused"):
            await connector.warm_up(connector.locations("ssh")[0])
    finally:
        await connector.close()
