"""The local connector: the shared conformance suite, plus what only local storage shows."""

from __future__ import annotations

import asyncio
import errno
import os
import threading
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from streamflow_data import (
    ConfigurationError,
    ConnectorError,
    Digest,
    ExecutionLocation,
    LocalConnector,
    LocalOptions,
    PathExistsError,
    PermissionDeniedError,
    StorageFullError,
)
from streamflow_data.connectors import local, localfiles
from streamflow_data.connectors.base import WriteItem
from streamflow_data.testing import ConnectorConformance, ConnectorHarness
from tests.helpers import cancel_blocked_open, descriptors_on

HERE = ExecutionLocation("conformance", "localhost", local=True)


class TestLocalConformance(ConnectorConformance):
    @pytest.fixture
    async def harness(self, tmp_path: Path) -> AsyncIterator[ConnectorHarness]:
        root = tmp_path / "scratch"
        root.mkdir()
        connector = LocalConnector()
        yield ConnectorHarness(connector, "conformance", HERE, str(root))
        await connector.close()


class TestLocalConformanceWithFsync(TestLocalConformance):
    """The durable mode passes the same suite."""

    @pytest.fixture
    async def harness(self, tmp_path: Path) -> AsyncIterator[ConnectorHarness]:
        root = tmp_path / "scratch"
        root.mkdir()
        # Off the loop: parsing options imports pydantic the first time (file reads).
        options = {"fsync": True, "max_threads": 2}
        connector = await asyncio.to_thread(LocalConnector.from_options, options)
        yield ConnectorHarness(connector, "conformance", HERE, str(root))
        await connector.close()


@pytest.fixture
async def connector() -> AsyncIterator[LocalConnector]:
    local = LocalConnector()
    yield local
    await local.close()


def test_options_are_validated() -> None:
    with pytest.raises(ConfigurationError, match=r"max_threads.*greater than or equal to 1"):
        LocalConnector.from_options({"max_threads": 0})
    with pytest.raises(ConfigurationError, match="colour"):
        LocalConnector.from_options({"colour": "blue"})
    assert LocalConnector.from_options({}).options == LocalOptions()


@pytest.mark.parametrize(
    ("code", "error"),
    [
        (errno.ENOSPC, StorageFullError),
        (errno.EDQUOT, StorageFullError),
        (errno.EACCES, PermissionDeniedError),
        (errno.EROFS, PermissionDeniedError),
        (errno.EEXIST, PathExistsError),
        (errno.EIO, ConnectorError),
    ],
)
async def test_os_errors_become_typed_errors_naming_path_and_location(
    connector: LocalConnector, code: int, error: type[ConnectorError]
) -> None:
    def fail() -> None:
        raise OSError(code, os.strerror(code))

    with pytest.raises(error, match=r"'/some/path' on conformance/localhost") as caught:
        await connector._run(HERE, "/some/path", fail)
    assert isinstance(caught.value.__cause__, OSError)
    assert caught.value.path == "/some/path" and caught.value.location == HERE


async def test_a_full_device_is_reported_as_storage_full(
    connector: LocalConnector, tmp_path: Path
) -> None:
    """/dev/full (present on every Linux) fails every write with ENOSPC, as a full disk does."""
    writer = await connector.open_writer(HERE, str(tmp_path / "unused"))
    try:
        fd = await asyncio.to_thread(os.open, "/dev/full", os.O_WRONLY)
        await asyncio.to_thread(os.dup2, fd, writer._fd)  # type: ignore[attr-defined]
        await asyncio.to_thread(os.close, fd)
        with pytest.raises(StorageFullError, match="No space left"):
            await writer.write(0, b"data")
    finally:
        await writer.abort()


async def test_file_over_a_directory_is_refused(connector: LocalConnector, tmp_path: Path) -> None:
    (tmp_path / "dir").mkdir()
    with pytest.raises(PathExistsError):
        await connector.write_file(HERE, str(tmp_path / "dir"), b"x")
    assert sorted(os.listdir(tmp_path)) == ["dir"]


async def test_a_writer_checks_what_it_reads_back_after_each_write(
    connector: LocalConnector, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its digest comes from the pieces read back as they were written, out of order;
    the file is read again whole only when those pieces are not the whole file."""
    data = os.urandom(3 * 65536 + 100)
    writer = await connector.open_writer(HERE, str(tmp_path / "f"))
    for offset in (65536, 0, 3 * 65536, 2 * 65536):
        await writer.write(offset, data[offset : offset + 65536])
    whole_reads: list[int] = []
    read_whole = localfiles.fd_digest

    def counted(fd: int) -> Digest:
        whole_reads.append(fd)
        return read_whole(fd)

    monkeypatch.setattr(localfiles, "fd_digest", counted)
    assert await writer.digest() == Digest.of(data)
    assert whole_reads == []
    [temporary] = await asyncio.to_thread(lambda: list(tmp_path.iterdir()))

    def append() -> None:
        with temporary.open("ab") as partial:
            partial.write(b"more")

    await asyncio.to_thread(append)
    assert await writer.digest() == Digest.of(data + b"more")
    assert len(whole_reads) == 1
    await writer.abort()


async def test_a_cancelled_open_for_reading_leaves_no_descriptor(tmp_path: Path) -> None:
    """Opening a FIFO to read blocks until a writer comes; a reader cancelled meanwhile
    must not keep the descriptor that the open returns afterwards."""
    fifo = tmp_path / "fifo"
    await asyncio.to_thread(os.mkfifo, fifo)
    connector = LocalConnector()
    opening = asyncio.create_task(connector.open_reader(HERE, str(fifo)))
    try:
        await cancel_blocked_open(opening, fifo, os.O_RDWR)  # a writer that never waits
    finally:
        await connector.close()


async def test_a_cancelled_create_leaves_neither_descriptor_nor_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A writer cancelled while its temporary file is being created (held up here) does
    not keep the file, nor the descriptor the creation returns afterwards."""
    started, finish = threading.Event(), threading.Event()
    created: list[str] = []
    create = localfiles.create

    def held(path: str, atomic: bool, mode: int | None) -> tuple[int, str]:
        started.set()
        finish.wait(10)
        fd, target = create(path, atomic, mode)
        created.append(target)
        return fd, target

    monkeypatch.setattr(localfiles, "create", held)
    connector = LocalConnector()
    try:
        opening = asyncio.create_task(connector.open_writer(HERE, str(tmp_path / "f")))
        assert await asyncio.to_thread(started.wait, 10)
        opening.cancel()
        finish.set()
        with pytest.raises(asyncio.CancelledError):
            await opening
    finally:
        await connector.close()
    assert len(created) == 1
    assert descriptors_on(Path(created[0])) == []
    assert os.listdir(tmp_path) == []


class _FakeFiles:
    """Stands for ``localfiles.read_whole`` or ``write_whole``: each file takes
    ``seconds`` and is neither read nor written (``result`` stands for its outcome);
    counts the calls running at once, at most."""

    def __init__(self, seconds: float, result: object) -> None:
        self.seconds = seconds
        self.result = result
        self.running = self.most = self.calls = 0
        self.lock = threading.Lock()

    def __call__(self, *args: Any) -> object:
        with self.lock:
            self.running += 1
            self.calls += 1
            self.most = max(self.most, self.running)
        time.sleep(self.seconds)
        with self.lock:
            self.running -= 1
        return self.result


_KINDS: dict[str, tuple[object, object]] = {
    "read_whole": ((b"x", None), b"x"),
    "write_whole": (None, None),
}
"""Each batched file call: what its fake answers, and the connector then for each file."""


async def _four_batches(
    connector: LocalConnector, directory: Path, name: str, files: int, kind: str
) -> Sequence[Sequence[object]]:
    """Four batches of ``files`` one-byte files each, given to ``connector`` at once to
    read (``kind`` ``read_whole``) or to write."""
    paths = [[str(directory / f"{name}{b}-{f}") for f in range(files)] for b in range(4)]
    if kind == "read_whole":
        return await asyncio.gather(*(connector.read_files(HERE, b) for b in paths))
    writes = [[WriteItem(path, b"x") for path in batch] for batch in paths]
    return await asyncio.gather(*(connector.write_files(HERE, b) for b in writes))


@pytest.mark.parametrize("kind", _KINDS)
@pytest.mark.parametrize(("seconds", "side_by_side"), [(0.0, False), (0.001, True)])
async def test_batches_overlap_only_where_files_are_slow(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, seconds: float, side_by_side: bool, kind: str
) -> None:
    """Where a file takes microseconds to read or write, batches side by side would only
    contend for the GIL: they go one at a time. Where it takes a millisecond, they
    overlap once the first files, handled alone, have shown it."""
    answer, outcome = _KINDS[kind]
    fake = _FakeFiles(seconds, answer)
    monkeypatch.setattr(localfiles, kind, fake)
    connector = LocalConnector()
    try:
        outcomes = await _four_batches(connector, tmp_path, "b", 100, kind)
    finally:
        await connector.close()
    assert [len(batch) for batch in outcomes] == [100] * 4
    assert all(each == outcome for batch in outcomes for each in batch)
    assert fake.calls == 400
    assert (fake.most > 1) is side_by_side


async def test_reads_and_writes_are_paced_apart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Files slow to create do not make reads overlap: the page cache may serve them in
    microseconds."""
    writes = _FakeFiles(0.001, None)
    reads = _FakeFiles(0.0, _KINDS["read_whole"][0])
    monkeypatch.setattr(localfiles, "write_whole", writes)
    monkeypatch.setattr(localfiles, "read_whole", reads)
    connector = LocalConnector()
    try:
        await _four_batches(connector, tmp_path, "w", 40, "write_whole")
        await _four_batches(connector, tmp_path, "r", 40, "read_whole")
    finally:
        await connector.close()
    assert writes.most > 1
    assert reads.most == 1


async def test_batches_go_one_at_a_time_again_once_files_are_quick_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A slow spell (a disk flushing, a busy machine) lets batches overlap for a while
    (``_OVERLAP_HOLD``); the batch after that, written alone, finds the files quick
    again, and batches go one at a time from then on."""
    monkeypatch.setattr(local, "_OVERLAP_HOLD", 0.5)
    writes = _FakeFiles(0.001, None)
    monkeypatch.setattr(localfiles, "write_whole", writes)
    connector = LocalConnector()
    try:
        await _four_batches(connector, tmp_path, "slow", 20, "write_whole")
        assert writes.most > 1
        writes.seconds, writes.most = 0.0, 0
        await asyncio.sleep(0.6)
        await _four_batches(connector, tmp_path, "quick", 20, "write_whole")
        assert writes.most == 1
    finally:
        await connector.close()
