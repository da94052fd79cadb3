"""An upload to a real sshd, cancelled halfway with a catalog, continues from its partial
file on the next run: the host keeps it, and its earlier bytes are checksummed by reading
them back."""

from __future__ import annotations

import asyncio
import hashlib
import os
from pathlib import Path

import pytest
from streamflow_data_ssh import SSHConnector

from benchmarks.resume_child import SlowSourceConnector, Target, kill_halfway_and_rerun
from streamflow_data import (
    DefaultDataManager,
    ExecutionLocation,
    InvalidPathError,
    LocalConnector,
    TransferProgress,
    TransferSettings,
)
from tests.helpers import LastSnapshot, wait_for_progress
from tests.ssh.conftest import OptionsFactory, directed
from tests.ssh.sshd import SSHServer

MiB = 1 << 20
# Blocks go through this process (asyncssh streams), so the journal marks each chunk's
# progress; a big local file on the OpenSSH master would go as ranges, which leave none.
SETTINGS = TransferSettings(chunk_size=8 * MiB, block_size=1 * MiB)


@pytest.mark.parametrize("damaged", [False, True])
async def test_a_cancelled_upload_continues_from_its_partial_file(
    ssh_options: OptionsFactory,
    ssh_servers: list[SSHServer],
    remote_dir: Path,
    tmp_path: Path,
    damaged: bool,
) -> None:
    """Cancelled, the upload leaves its partial file on the host; the rerun continues it.
    If that file's first bytes changed in between, reading them back for the digest shows
    it, and the file is sent again whole."""
    blob, target = tmp_path / "blob", remote_dir / "up"
    data = os.urandom(24 * MiB)
    await asyncio.to_thread(blob.write_bytes, data)
    catalog = str(tmp_path / "catalog.sqlite")

    async def upload(delay: float) -> TransferProgress:
        finished = LastSnapshot()
        connectors = {
            "source": SlowSourceConnector(delay),
            "ssh": SSHConnector(ssh_options(ssh_servers[:1], streams="asyncssh")),
        }
        async with DefaultDataManager(
            connectors, catalog=catalog, listeners=[finished], settings=SETTINGS
        ) as manager:
            [source], [host] = manager.locations("source"), manager.locations("ssh")
            manager.register_path(source, str(blob))
            await manager.transfer_data(source, str(blob), [host], str(target))
        assert finished.last is not None
        return finished.last

    first = asyncio.create_task(upload(0.02))
    await wait_for_progress(catalog)
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    left = await asyncio.to_thread(os.listdir, remote_dir)
    assert len(left) == 1 and left[0].endswith(".sfd-part")  # kept, not at the path
    if damaged:
        await asyncio.to_thread(_flip_first_byte, remote_dir / left[0])
    again = await upload(0.0)
    done = again.destinations[0]
    if damaged:  # the continued copy failed its check, and went again from the start
        assert done.bytes_skipped == 0 and again.bytes_moved >= again.bytes_total
    else:
        assert done.bytes_skipped >= 4 * MiB
        assert again.bytes_moved + done.bytes_skipped == again.bytes_total
    assert done.bytes_done == again.bytes_total and done.files_done == 1
    assert await asyncio.to_thread(target.read_bytes) == data
    assert await asyncio.to_thread(os.listdir, remote_dir) == ["up"]


async def test_a_resume_token_must_name_a_partial_file_of_its_path(
    ssh: SSHConnector, host_a: ExecutionLocation, remote_dir: Path
) -> None:
    """Tokens come from a catalog file: one that names another file is refused before
    anything on the host is opened."""
    path = str(remote_dir / "up")
    for token, atomic in [("/etc/passwd", True), (str(remote_dir / "other"), False)]:
        with pytest.raises(InvalidPathError, match="is not a partial file"):
            await ssh.resume_writer(host_a, path, token, atomic=atomic)


def _flip_first_byte(path: Path) -> None:
    with path.open("r+b") as file:
        first = file.read(1)
        file.seek(0)
        file.write(bytes([first[0] ^ 0xFF]))


@pytest.mark.parametrize("direction", ["up", "down"])
async def test_a_file_the_master_moves_itself_continues_from_its_whole_chunks(
    ssh_options: OptionsFactory,
    ssh_servers: list[SSHServer],
    host_a: ExecutionLocation,
    remote_dir: Path,
    tmp_path: Path,
    direction: str,
) -> None:
    """A big file between this machine and the host goes as one range that the OpenSSH
    master reads or writes itself; cancelled, it has recorded its whole chunks, and the
    rerun continues from them."""
    blob, target, source, destination = directed(direction, tmp_path, remote_dir, host_a)
    await asyncio.to_thread(_holey_file, blob, 256 * MiB)
    catalog = str(tmp_path / "catalog.sqlite")

    async def copy() -> TransferProgress:
        finished = LastSnapshot()
        connectors = {
            "local": LocalConnector(),
            "ssh": SSHConnector(ssh_options(ssh_servers[:1], streams="openssh")),
        }
        async with DefaultDataManager(
            connectors, catalog=catalog, listeners=[finished], settings=SETTINGS
        ) as manager:
            manager.register_path(source, str(blob))
            await manager.transfer_data(source, str(blob), [destination], str(target))
        assert finished.last is not None
        return finished.last

    first = asyncio.create_task(copy())
    await wait_for_progress(catalog, 2 * SETTINGS.chunk_size)
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    again = await copy()
    done = again.destinations[0]
    assert done.bytes_skipped >= 2 * SETTINGS.chunk_size
    assert again.bytes_moved + done.bytes_skipped == again.bytes_total
    assert await asyncio.to_thread(_sha256, target) == await asyncio.to_thread(_sha256, blob)


def _holey_file(path: Path, size: int) -> None:
    """``size`` bytes, random at both ends and every 16 MiB, zeros between (quick to
    make and to read)."""
    with path.open("wb") as file:
        for offset in range(0, size, 16 * MiB):
            file.seek(offset)
            file.write(os.urandom(64 * 1024))
        file.truncate(size)


def _sha256(path: Path) -> str:
    with path.open("rb") as file:
        return hashlib.file_digest(file, "sha256").hexdigest()


def test_an_upload_killed_part_way_moves_only_what_is_missing_when_rerun(
    ssh_options: OptionsFactory, ssh_servers: list[SSHServer], remote_dir: Path, tmp_path: Path
) -> None:
    """``kill -9`` of the whole job while the master uploads: the host holds more than the
    journal recorded (chunks are recorded behind what the master has read); the rerun
    finds it by digests computed on the host, and sends only what is missing."""
    src = tmp_path / "big.bin"
    src.write_bytes(os.urandom(128 * MiB))
    options = ssh_options(ssh_servers[:1]).model_dump_json(exclude_defaults=True)
    result = kill_halfway_and_rerun(
        str(tmp_path / "catalog.sqlite"),
        str(src),
        str(remote_dir / "copy.bin"),
        delay=0.0,
        fraction=0.4,
        target=Target("ssh", options),
    )
    assert 0 < result.missing < 128 * MiB
    assert result.moved + result.skipped == 128 * MiB
    assert result.missing <= result.moved <= 1.1 * result.missing, result
    assert _sha256(remote_dir / "copy.bin") == _sha256(src)
