"""What a host lists crosses a trust boundary: names that leave the tree, links in the way."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from streamflow_data_ssh import SSHConnector

from streamflow_data import (
    DefaultDataManager,
    ExecutionLocation,
    InvalidPathError,
    LocalConnector,
    NameTooLongError,
    TransferError,
    UnsafePathError,
)
from tests.ssh.conftest import LOCAL, SMALL_CHUNKS, OptionsFactory
from tests.ssh.sshd import SSHServer, client_key, known_hosts, owned_directory, start_server

HOSTILE_FIND = """#!/bin/sh
# The host's find, but the file named "evil" is listed as ../../x.
/usr/bin/find "$@" | sed -z 's|^evil$|../../x|'
"""


@pytest.fixture(scope="module")
def hostile_server(ssh_base: Path) -> Iterator[SSHServer]:
    """An sshd whose sessions find a ``find`` that lists a name outside the tree."""
    directory = ssh_base / "hostile"
    programs = ssh_base / "hostile-bin"
    programs.mkdir()
    (programs / "find").write_text(HOSTILE_FIND)
    os.chmod(programs / "find", 0o755)
    server = start_server(
        "hostile",
        directory,
        client_key(ssh_base),
        settings=f"SetEnv PATH={programs}:/usr/bin:/bin\n",
    )
    known_hosts([server], directory / "known_hosts")
    yield server
    server.stop()


@pytest.fixture
async def hostile(
    hostile_server: SSHServer, ssh_options: OptionsFactory
) -> AsyncIterator[SSHConnector]:
    options = ssh_options(
        [hostile_server], known_hosts=str(hostile_server.directory / "known_hosts")
    )
    connector = SSHConnector(options)
    yield connector
    await connector.close()


def _failure_of(caught: pytest.ExceptionInfo[TransferError]) -> UnsafePathError:
    (failure,) = caught.value.failures
    assert isinstance(failure.cause, UnsafePathError) and not failure.cause.retryable
    return failure.cause


async def test_a_name_listed_outside_the_tree_fails_the_copy_before_anything_is_written(
    hostile: SSHConnector, remote_dir: Path, tmp_path: Path
) -> None:
    host = hostile.locations("ssh")[0]
    source = remote_dir / "src"
    source.mkdir()
    (source / "evil").write_bytes(os.urandom(3 << 20))  # a big file: the chunked path
    (source / "fine.txt").write_text("fine")
    # What the host would serve for the name it lists, were the name followed.
    (remote_dir.parent / "x").write_bytes(b"from outside the tree")
    destination = tmp_path / "a" / "b" / "dst"
    destination.parent.mkdir(parents=True)
    async with DefaultDataManager(
        {"local": LocalConnector(), "ssh": hostile}, settings=SMALL_CHUNKS
    ) as manager:
        manager.register_path(host, str(source))
        with pytest.raises(TransferError) as caught:
            await manager.transfer_data(host, str(source), [LOCAL], str(destination))
    unsafe = _failure_of(caught)
    assert f"'{source}/../../x' on ssh/hostile" in str(unsafe)
    assert "'..' component" in str(unsafe)
    # Nothing anywhere: not the destination, not beside it.
    assert await asyncio.to_thread(os.listdir, tmp_path / "a") == ["b"]
    assert await asyncio.to_thread(os.listdir, tmp_path / "a" / "b") == []


@pytest.mark.parametrize("size", [100, 3 << 20], ids=["small", "big"])
async def test_a_link_in_the_destination_tree_is_never_written_through(
    ssh: SSHConnector, host_a: ExecutionLocation, remote_dir: Path, tmp_path: Path, size: int
) -> None:
    source = tmp_path / "src"
    (source / "sub").mkdir(parents=True)
    (source / "sub" / "data.bin").write_bytes(os.urandom(size))
    outside = owned_directory(remote_dir / "outside")  # the login user could write there
    owned_directory(remote_dir / "dst")
    (remote_dir / "dst" / "sub").symlink_to(outside)
    async with DefaultDataManager(
        {"local": LocalConnector(), "ssh": ssh}, settings=SMALL_CHUNKS
    ) as manager:
        manager.register_path(LOCAL, str(source))
        with pytest.raises(TransferError) as caught:
            await manager.transfer_data(LOCAL, str(source), [host_a], str(remote_dir / "dst"))
    assert await asyncio.to_thread(os.listdir, outside) == []
    unsafe = _failure_of(caught)
    assert f"'{remote_dir}/dst/sub' on ssh/{host_a.name}" in str(unsafe)
    assert (remote_dir / "dst" / "sub").is_symlink()


async def test_a_nul_byte_is_refused_before_it_reaches_the_host(
    ssh: SSHConnector, host_a: ExecutionLocation, remote_dir: Path, tmp_path: Path
) -> None:
    (tmp_path / "f").write_text("f")
    await ssh.stat(host_a, str(remote_dir))
    opened = ssh.commands_run(host_a)
    for attempt in (
        ssh.stat(host_a, f"{remote_dir}/a\0b"),
        ssh.make_directories(host_a, [f"{remote_dir}/a\0b"]),
        ssh.remove(host_a, f"{remote_dir}/a\0b"),
    ):
        with pytest.raises(InvalidPathError, match="NUL byte"):
            await attempt
    assert ssh.commands_run(host_a) == opened  # nothing was sent
    async with DefaultDataManager({"local": LocalConnector(), "ssh": ssh}) as manager:
        manager.register_path(LOCAL, str(tmp_path / "f"))
        with pytest.raises(InvalidPathError, match="NUL byte"):
            await manager.transfer_data(LOCAL, str(tmp_path / "f"), [host_a], "/tmp/a\0b")
        with pytest.raises(InvalidPathError, match="NUL byte"):
            manager.register_path(host_a, "/tmp/a\0b")
        # The shared connection is still up: the next copy goes through at once.
        await manager.transfer_data(LOCAL, str(tmp_path / "f"), [host_a], f"{remote_dir}/f")
    assert await asyncio.to_thread((remote_dir / "f").read_text) == "f"


@pytest.mark.parametrize("size", [100, 3 << 20], ids=["small", "big"])
async def test_a_name_too_long_is_a_permanent_typed_error(
    ssh: SSHConnector, host_a: ExecutionLocation, remote_dir: Path, tmp_path: Path, size: int
) -> None:
    source = tmp_path / "f"
    source.write_bytes(os.urandom(size))
    async with DefaultDataManager(
        {"local": LocalConnector(), "ssh": ssh}, settings=SMALL_CHUNKS
    ) as manager:
        manager.register_path(LOCAL, str(source))
        with pytest.raises(TransferError) as caught:
            await manager.transfer_data(LOCAL, str(source), [host_a], f"{remote_dir}/{'n' * 300}")
        (failure,) = caught.value.failures
        assert isinstance(failure.cause, NameTooLongError), failure.cause
        assert dict(manager.statistics.errors) == {"NameTooLongError": 1}  # tried once


async def test_a_private_file_is_private_while_it_is_written(
    ssh: SSHConnector, host_a: ExecutionLocation, remote_dir: Path
) -> None:
    writer = await ssh.open_writer(host_a, f"{remote_dir}/secret", mode=0o600)
    try:
        await writer.write(0, b"x" * 1024)
        [partial] = await asyncio.to_thread(os.listdir, remote_dir)
        assert partial.endswith(".sfd-part")
        found = await asyncio.to_thread(os.stat, remote_dir / partial)
        assert found.st_mode & 0o777 == 0o600
    finally:
        await writer.abort()


@pytest.mark.parametrize("size", [100, 3 << 20], ids=["small", "big"])
async def test_setuid_and_setgid_bits_are_dropped_unless_kept(
    ssh: SSHConnector, host_a: ExecutionLocation, remote_dir: Path, tmp_path: Path, size: int
) -> None:
    source = tmp_path / "src"
    source.mkdir()
    (source / "program").write_bytes(os.urandom(size))
    (source / "program").chmod(0o6755)
    (source / "plain").write_bytes(b"plain")
    (source / "plain").chmod(0o1640)
    for keep, expected in ((False, 0o755), (True, 0o6755)):
        settings = SMALL_CHUNKS.replace(keep_setid=keep)
        async with DefaultDataManager(
            {"local": LocalConnector(), "ssh": ssh}, settings=settings
        ) as manager:
            manager.register_path(LOCAL, str(source))
            target = remote_dir / f"keep-{keep}"
            await manager.transfer_data(LOCAL, str(source), [host_a], str(target))
        program = await asyncio.to_thread(os.stat, target / "program")
        assert program.st_mode & 0o7777 == expected
        assert (await asyncio.to_thread(os.stat, target / "plain")).st_mode & 0o7777 == 0o1640


def _write_files(root: bytes, files: dict[bytes, bytes]) -> None:
    for name, data in files.items():
        path = os.path.join(root, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as file:
            file.write(data)


def _read_files(root: bytes, names: list[bytes]) -> dict[bytes, bytes]:
    found = {}
    for name in names:
        with open(os.path.join(root, name), "rb") as file:
            found[name] = file.read()
    return found


async def test_names_that_are_not_utf8_travel_intact_both_ways(
    ssh: SSHConnector, host_a: ExecutionLocation, remote_dir: Path, tmp_path: Path
) -> None:
    source = os.fsencode(tmp_path / "src")
    files = {b"caf\xe9": b"small", b"d\xe9j\xe0/big\xff.bin": os.urandom(3 << 20)}
    await asyncio.to_thread(_write_files, source, files)
    async with DefaultDataManager(
        {"local": LocalConnector(), "ssh": ssh}, settings=SMALL_CHUNKS
    ) as manager:
        manager.register_path(LOCAL, os.fsdecode(source))
        there = f"{remote_dir}/tree"
        await manager.transfer_data(LOCAL, os.fsdecode(source), [host_a], there)
        await manager.transfer_data(host_a, there, [LOCAL], str(tmp_path / "back"))
    for root in (os.fsencode(there), os.fsencode(tmp_path / "back")):
        assert await asyncio.to_thread(_read_files, root, list(files)) == files


@pytest.mark.parametrize("size", [100, 3 << 20], ids=["small", "big"])
async def test_a_name_with_a_newline_travels_both_ways_whatever_its_size(
    ssh: SSHConnector, host_a: ExecutionLocation, remote_dir: Path, tmp_path: Path, size: int
) -> None:
    files = {b"two\nlines": os.urandom(size), b"plain": b"plain"}
    await asyncio.to_thread(_write_files, os.fsencode(tmp_path / "src"), files)
    async with DefaultDataManager(
        {"local": LocalConnector(), "ssh": ssh}, settings=SMALL_CHUNKS
    ) as manager:
        manager.register_path(LOCAL, str(tmp_path / "src"))
        there = f"{remote_dir}/tree"
        await manager.transfer_data(LOCAL, str(tmp_path / "src"), [host_a], there)
        await manager.transfer_data(host_a, there, [LOCAL], str(tmp_path / "back"))
    for root in (os.fsencode(there), os.fsencode(tmp_path / "back")):
        assert await asyncio.to_thread(_read_files, root, list(files)) == files
