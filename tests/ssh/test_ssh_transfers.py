"""Transfers through the data manager between the local node and real sshd hosts."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from streamflow_data_ssh import SSHConnector

from streamflow_data import (
    DefaultDataManager,
    ExecutionLocation,
    LocalConnector,
    LocationUnreachableError,
    StorageFullError,
    TransferError,
    TransferProgress,
    Verification,
)
from tests.helpers import TREE_BYTES, LastSnapshot, make_tree, snapshot
from tests.ssh.conftest import LOCAL, SMALL_CHUNKS, OptionsFactory, directed, round_trip
from tests.ssh.sshd import SSHServer, login_user, owned_directory
from tests.wrappers import WrappingConnector


@pytest.fixture
async def manager(ssh: SSHConnector) -> AsyncIterator[DefaultDataManager]:
    data_manager = DefaultDataManager(
        {"local": LocalConnector(), "ssh": ssh}, settings=SMALL_CHUNKS
    )
    yield data_manager
    await data_manager.close()


async def test_a_tree_round_trips_with_links_modes_times_and_empty_directories(
    manager: DefaultDataManager, host_a: ExecutionLocation, remote_dir: Path, tmp_path: Path
) -> None:
    source, back = tmp_path / "source", tmp_path / "back"
    await asyncio.to_thread(make_tree, source)
    manager.register_path(LOCAL, str(source))
    await manager.transfer_data(LOCAL, str(source), [host_a], str(remote_dir / "tree"))
    expected = await asyncio.to_thread(snapshot, source)
    assert await asyncio.to_thread(snapshot, remote_dir / "tree") == expected
    await manager.transfer_data(host_a, str(remote_dir / "tree"), [LOCAL], str(back))
    assert await asyncio.to_thread(snapshot, back) == expected
    written = manager.statistics.of(host_a).bytes_written
    assert written == TREE_BYTES


async def test_one_read_feeds_two_hosts(
    manager: DefaultDataManager,
    host_a: ExecutionLocation,
    host_b: ExecutionLocation,
    remote_dir: Path,
    tmp_path: Path,
) -> None:
    blob = tmp_path / "blob"
    await asyncio.to_thread(blob.write_bytes, os.urandom(5_000_003))
    manager.register_path(LOCAL, str(blob))
    targets = [str(remote_dir / "on-a"), str(remote_dir / "on-b")]
    await manager.transfer_data(LOCAL, str(blob), [host_a], targets[0])
    before = manager.statistics.of(LOCAL).bytes_read
    await manager.transfer_data(LOCAL, str(blob), [host_a, host_b], str(remote_dir / "both"))
    assert manager.statistics.of(LOCAL).bytes_read - before == 5_000_003
    assert (remote_dir / "both").read_bytes() == blob.read_bytes()
    replicas = manager.get_data_locations(str(remote_dir / "both"), deployment="ssh")
    both = {r.location.name for r in replicas if r.path == str(remote_dir / "both")}
    assert both == {"host-a", "host-b"}


async def test_remote_to_remote_same_host_copies_there_other_hosts_stream(
    manager: DefaultDataManager,
    host_a: ExecutionLocation,
    host_b: ExecutionLocation,
    remote_dir: Path,
    tmp_path: Path,
) -> None:
    source = tmp_path / "source"
    await asyncio.to_thread(make_tree, source)
    manager.register_path(LOCAL, str(source))
    await manager.transfer_data(LOCAL, str(source), [host_a], str(remote_dir / "a"))
    read_before = manager.statistics.of(host_a).bytes_read
    await manager.transfer_data(host_a, str(remote_dir / "a"), [host_a], str(remote_dir / "a2"))
    assert manager.statistics.of(host_a).bytes_read == read_before  # cp on the host
    await manager.transfer_data(host_a, str(remote_dir / "a"), [host_b], str(remote_dir / "b"))
    assert manager.statistics.of(host_a).bytes_read - read_before == TREE_BYTES
    expected = await asyncio.to_thread(snapshot, source)
    for copy in ("a2", "b"):
        assert await asyncio.to_thread(snapshot, remote_dir / copy) == expected


async def test_big_files_move_in_parallel_chunks_both_ways(
    manager: DefaultDataManager, host_a: ExecutionLocation, remote_dir: Path, tmp_path: Path
) -> None:
    await round_trip(manager, host_a, remote_dir, tmp_path, 9 * (1 << 20) + 12345)


@pytest.fixture
def full_disk(remote_dir: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs the login user may write to: writing more fills it."""
    mount = owned_directory(remote_dir / "small-disk")
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], check=True)
    shutil.chown(mount, login_user())
    yield mount
    subprocess.run(["umount", str(mount)], check=True)


async def test_a_full_remote_disk_is_reported_and_leaves_nothing(
    manager: DefaultDataManager, host_a: ExecutionLocation, full_disk: Path, tmp_path: Path
) -> None:
    for name, size in (("big", 3_000_000), ("small", 200_000)):
        blob = tmp_path / name
        await asyncio.to_thread(blob.write_bytes, os.urandom(size))
        (full_disk / "filler").write_bytes(b"x" * 900_000) if name == "small" else None
        manager.register_path(LOCAL, str(blob))
        with pytest.raises(TransferError) as caught:
            await manager.transfer_data(LOCAL, str(blob), [host_a], str(full_disk / name))
        assert isinstance(caught.value.failures[0].cause, StorageFullError), caught.value
        assert sorted(os.listdir(full_disk)) == (["filler"] if name == "small" else [])
        assert not manager.get_data_locations(str(full_disk / name), deployment="ssh")


@pytest.fixture
def full_local_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs here."""
    mount = tmp_path / "small-disk"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], check=True)
    yield mount
    subprocess.run(["umount", str(mount)], check=True)


async def test_a_full_local_disk_is_reported_and_leaves_nothing(
    manager: DefaultDataManager, host_a: ExecutionLocation, remote_dir: Path, full_local_disk: Path
) -> None:
    """``ssh`` writes the download into the local file itself; where it fails, the rest
    is written here, and the local connector tells why."""
    blob = remote_dir / "blob"
    await asyncio.to_thread(blob.write_bytes, os.urandom(3_000_000))
    manager.register_path(host_a, str(blob))
    with pytest.raises(TransferError) as caught:
        await manager.transfer_data(host_a, str(blob), [LOCAL], str(full_local_disk / "blob"))
    assert isinstance(caught.value.failures[0].cause, StorageFullError), caught.value
    assert await asyncio.to_thread(os.listdir, full_local_disk) == []
    assert not manager.get_data_locations(str(full_local_disk / "blob"), deployment="local")


@pytest.mark.parametrize("direction", ["up", "down"])
@pytest.mark.parametrize("streams", ["openssh", "asyncssh"])
async def test_killing_the_server_mid_transfer_fails_cleanly(
    ssh_options: OptionsFactory,
    ssh_servers: list[SSHServer],
    remote_dir: Path,
    tmp_path: Path,
    streams: str,
    direction: str,
) -> None:
    server = ssh_servers[1]
    connector = SSHConnector(ssh_options([server], retries=1, retry_delay=0.05, streams=streams))
    [host] = connector.locations("ssh")
    blob, target, source, destination = directed(direction, tmp_path, remote_dir, host)
    if direction == "up":
        await asyncio.to_thread(blob.write_bytes, os.urandom(48 << 20))
    else:  # faster: more to move before the kill lands (without compression, zeros do)
        await asyncio.to_thread(_zeros, blob, 160 << 20)
    killed = asyncio.Event()
    killing: list[asyncio.Task[None]] = []

    def kill_once_started(progress: TransferProgress) -> None:
        if not killed.is_set() and progress.destinations[0].bytes_done > 0:
            killed.set()
            killing.append(asyncio.get_running_loop().create_task(asyncio.to_thread(server.stop)))

    manager = DefaultDataManager(
        {"local": LocalConnector(), "ssh": connector},
        settings=SMALL_CHUNKS,
        listeners=[kill_once_started],
    )
    try:
        manager.register_path(source, str(blob))
        with pytest.raises(TransferError) as caught:
            await manager.transfer_data(source, str(blob), [destination], str(target))
        assert killed.is_set()
        await killing[0]
        assert isinstance(caught.value.failures[0].cause, LocationUnreachableError)
        assert not await asyncio.to_thread(target.exists)
        if direction == "down":  # the dead host keeps an upload's temporary file
            assert await asyncio.to_thread(os.listdir, tmp_path) == []
        assert not manager.get_data_locations(str(target), deployment=destination.deployment)
    finally:
        await manager.close()
        if server.process.poll() is not None:
            await asyncio.to_thread(server.start)


async def test_sha256_verification_reads_the_copies_back_over_ssh(
    ssh: SSHConnector, host_a: ExecutionLocation, remote_dir: Path, tmp_path: Path
) -> None:
    source, back = tmp_path / "source", tmp_path / "back"
    await asyncio.to_thread(make_tree, source)
    settings = SMALL_CHUNKS.replace(checksum="sha256")
    connectors = {"local": LocalConnector(), "ssh": ssh}
    async with DefaultDataManager(connectors, settings=settings) as manager:
        manager.register_path(LOCAL, str(source))
        await manager.transfer_data(LOCAL, str(source), [host_a], str(remote_dir / "tree"))
        assert manager.statistics.of(host_a).bytes_read == TREE_BYTES  # every file hashed there
        await manager.transfer_data(host_a, str(remote_dir / "tree"), [LOCAL], str(back))
        assert not manager.statistics.errors
    assert await asyncio.to_thread(snapshot, back) == await asyncio.to_thread(snapshot, source)


def _zeros(path: Path, size: int) -> None:
    with path.open("wb") as file:
        file.truncate(size)


async def test_a_link_to_a_tree_is_copied_as_the_tree(
    manager: DefaultDataManager, host_a: ExecutionLocation, remote_dir: Path, tmp_path: Path
) -> None:
    source = tmp_path / "source"
    await asyncio.to_thread(make_tree, source)
    manager.register_path(LOCAL, str(source))
    await manager.transfer_data(LOCAL, str(source), [host_a], str(remote_dir / "tree"))
    await asyncio.to_thread((remote_dir / "link").symlink_to, remote_dir / "tree")
    manager.register_path(host_a, str(remote_dir / "link"))
    await manager.transfer_data(host_a, str(remote_dir / "link"), [LOCAL], str(tmp_path / "back"))
    expected = await asyncio.to_thread(snapshot, source)
    assert await asyncio.to_thread(snapshot, tmp_path / "back") == expected


async def test_two_names_of_one_host_file_both_arrive(
    manager: DefaultDataManager, host_a: ExecutionLocation, remote_dir: Path, tmp_path: Path
) -> None:
    """``tar c`` sends the second name of a file as a hard link to the first: the batch
    that reads both gets the bytes for each, without failing and retrying file by file."""
    tree = remote_dir / "linked"
    tree.mkdir()
    (tree / "a").write_bytes(b"the same bytes")
    os.link(tree / "a", tree / "b")
    (tree / "c").write_bytes(b"other bytes")
    manager.register_path(host_a, str(tree))
    await manager.transfer_data(host_a, str(tree), [LOCAL], str(tmp_path / "back"))
    back = tmp_path / "back"
    assert sorted(p.name for p in back.iterdir()) == ["a", "b", "c"]
    assert (back / "a").read_bytes() == (back / "b").read_bytes() == b"the same bytes"
    assert (back / "c").read_bytes() == b"other bytes"
    assert not manager.statistics.errors


async def test_sha256_verification_reads_small_files_back_in_batches(
    ssh: SSHConnector, host_a: ExecutionLocation, remote_dir: Path, tmp_path: Path
) -> None:
    """One remote command reads back many small files, not one or more per file."""
    source = tmp_path / "source"
    source.mkdir()
    for index in range(100):
        (source / f"f{index:03}").write_bytes(os.urandom(4096))
    commands = {}
    for checksum in ("crc32c", "sha256"):
        settings = SMALL_CHUNKS.replace(checksum=checksum, max_concurrent_files=1)
        connector = SSHConnector(ssh.options)
        try:
            async with DefaultDataManager(
                {"local": LocalConnector(), "ssh": connector}, settings=settings
            ) as manager:
                manager.register_path(LOCAL, str(source))
                target = remote_dir / checksum
                await manager.transfer_data(LOCAL, str(source), [host_a], str(target))
                commands[checksum] = connector.commands_run(host_a)
        finally:
            await connector.close()
    # Hashing batches and the probe for sha256sum, not 300 more, one by one.
    assert commands["sha256"] - commands["crc32c"] <= 3, commands


async def test_a_host_file_rewritten_while_read_is_read_again(
    ssh_options: OptionsFactory, remote_dir: Path, tmp_path: Path
) -> None:
    # Blocks through this process, as every byte is checked (a download poured into the
    # local file bypasses the writer that stalls here); the check is the same either way.
    ssh = SSHConnector(ssh_options(verify="sha256"))
    host_a = ssh.locations("ssh")[0]
    source = remote_dir / "big.bin"
    await asyncio.to_thread(source.write_bytes, os.urandom(3 << 20))
    stalled = WrappingConnector(str(tmp_path / "here"), stall_writes=True)
    await asyncio.to_thread((tmp_path / "here").mkdir)
    here = ExecutionLocation("here", "localhost", local=True)
    settings = SMALL_CHUNKS.replace(max_retries=1)
    async with DefaultDataManager({"ssh": ssh, "here": stalled}, settings=settings) as manager:
        manager.register_path(host_a, str(source))
        copy = asyncio.create_task(manager.transfer_data(host_a, str(source), [here], "/c.bin"))
        await asyncio.wait_for(stalled.write_started.wait(), 10)
        newer = os.urandom(3 << 20)

        def rewrite() -> None:
            with source.open("r+b") as file:
                file.write(newer)

        await asyncio.to_thread(rewrite)
        stalled.release.set()
        await copy
        assert manager.statistics.retries == 1
    assert await asyncio.to_thread((tmp_path / "here" / "c.bin").read_bytes) == newer


@pytest.mark.parametrize(
    ("options", "checksum", "upload", "expected"),
    [
        ({"streams": "openssh"}, "crc32c", True, Verification.SIZE),  # ssh reads the file
        ({"streams": "asyncssh"}, "crc32c", True, Verification.SENT),  # checksummed as sent
        ({"streams": "asyncssh", "verify": "sha256"}, "crc32c", True, Verification.RECEIVED),
        ({"streams": "openssh"}, "sha256", True, Verification.STORED),  # hashed on the host
        ({"streams": "openssh"}, "crc32c", False, Verification.SIZE),  # ssh writes the file
        ({"streams": "asyncssh"}, "crc32c", False, Verification.SIZE),  # poured as it comes
        ({"streams": "asyncssh", "verify": "sha256"}, "crc32c", False, Verification.STORED),
    ],
)
async def test_a_big_file_says_what_its_check_proved(
    ssh_options: OptionsFactory,
    ssh_servers: list[SSHServer],
    remote_dir: Path,
    tmp_path: Path,
    options: dict[str, object],
    checksum: str,
    upload: bool,
    expected: Verification,
) -> None:
    """The size-only check of a file moved past the engine's blocks (the OpenSSH master
    reads or writes it itself, or a download is poured into the local file) is reported
    as such, not as a digest compared with itself."""
    here, there = tmp_path / "blob", remote_dir / "blob"
    src, dst = (here, there) if upload else (there, here)
    await asyncio.to_thread(src.write_bytes, os.urandom(6 * 1024 * 1024))
    connector = SSHConnector(ssh_options(ssh_servers[:1], **options))
    [host] = connector.locations("ssh")
    source, target = (LOCAL, host) if upload else (host, LOCAL)
    finished = LastSnapshot()
    settings = SMALL_CHUNKS.replace(checksum=checksum)
    connectors = {"local": LocalConnector(), "ssh": connector}
    async with DefaultDataManager(connectors, settings=settings, listeners=[finished]) as m:
        m.register_path(source, str(src))
        await m.transfer_data(source, str(src), [target], str(dst))
    assert finished.last is not None
    assert finished.last.destinations[0].verification is expected


async def test_a_small_file_to_a_host_just_connected_is_one_remote_command(
    ssh_options: OptionsFactory, remote_dir: Path, tmp_path: Path
) -> None:
    """A fresh process's first small upload, once the connection is open, runs one
    command: the file comes with its mode, so the host's umask is not probed."""
    source = tmp_path / "small"
    await asyncio.to_thread(source.write_bytes, os.urandom(4096))
    connector = SSHConnector(ssh_options())
    host = connector.locations("ssh")[0]
    try:
        async with DefaultDataManager({"local": LocalConnector(), "ssh": connector}) as manager:
            manager.register_path(LOCAL, str(source))
            await connector.stat(host, "/")  # the connection open, as a step finds it
            before = connector.commands_run(host)
            await manager.transfer_data(LOCAL, str(source), [host], str(remote_dir / "f"))
            assert connector.commands_run(host) - before == 1
    finally:
        await connector.close()
    assert (remote_dir / "f").read_bytes() == source.read_bytes()


async def test_a_small_tree_to_a_host_is_four_remote_commands(
    ssh_options: OptionsFactory, remote_dir: Path, tmp_path: Path
) -> None:
    """A tree of a few small files: whether the destination exists, its directories, the
    files in one batch, then the directories' modes and times with the rename that
    publishes the tree, in one command."""
    source = tmp_path / "tree"
    for name in ("a", "sub/b", "sub/c"):
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        await asyncio.to_thread((source / name).write_bytes, os.urandom(4096))
    os.utime(source / "sub", ns=(1_600_000_000 * 10**9,) * 2)
    connector = SSHConnector(ssh_options())
    host = connector.locations("ssh")[0]
    try:
        async with DefaultDataManager({"local": LocalConnector(), "ssh": connector}) as manager:
            manager.register_path(LOCAL, str(source))
            await connector.stat(host, "/")
            before = connector.commands_run(host)
            await manager.transfer_data(LOCAL, str(source), [host], str(remote_dir / "t"))
            assert connector.commands_run(host) - before == 4
    finally:
        await connector.close()
    assert (remote_dir / "t" / "sub" / "c").read_bytes() == (source / "sub" / "c").read_bytes()
    assert (remote_dir / "t" / "sub").stat().st_mtime_ns == 1_600_000_000 * 10**9
    assert await asyncio.to_thread(os.listdir, remote_dir) == ["t"]  # no staging tree left
