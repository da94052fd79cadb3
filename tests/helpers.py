"""Test helpers: source trees, tree snapshots, and "hosts" simulated on this machine."""

from __future__ import annotations

import asyncio
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from benchmarks.resume_child import SlowSourceConnector
from streamflow_data import (
    CatalogError,
    CatalogSettings,
    DefaultDataManager,
    ExecutionLocation,
    TransferProgress,
    TransferSettings,
)
from streamflow_data.catalog import Catalog
from streamflow_data.catalog.database import is_postgres
from tests.wrappers import WrappingConnector

KiB = 1024
MiB = 1024 * 1024
SMALL = TransferSettings(chunk_size=256 * KiB, block_size=64 * KiB, block_count=4, retry_delay=0.01)
"""Small sizes, so that a file of :data:`SIZE` bytes has several chunks of several blocks."""
SIZE = 1_000_003

MTIME = 1_500_000_000_123_456_789
TREE_BYTES = 3_000_000 + 5 + 100 + 10
"""Bytes in the files of :func:`make_tree`."""


def snapshot(root: Path) -> dict[str, tuple[str, int, int, bytes | str | None]]:
    """Kind, mode, mtime and content (or link target) of every path below ``root``."""
    result: dict[str, tuple[str, int, int, bytes | str | None]] = {}
    for directory, subdirectories, files in os.walk(root):
        for name in subdirectories + files:
            path = Path(directory) / name
            info = path.lstat()
            key = str(path.relative_to(root))
            if stat.S_ISLNK(info.st_mode):
                result[key] = ("link", 0, info.st_mtime_ns, os.readlink(path))
            elif stat.S_ISDIR(info.st_mode):
                result[key] = ("dir", stat.S_IMODE(info.st_mode), info.st_mtime_ns, None)
            else:
                content = path.read_bytes()
                result[key] = ("file", stat.S_IMODE(info.st_mode), info.st_mtime_ns, content)
    return result


def make_tree(root: Path) -> None:
    (root / "sub" / "deeper").mkdir(parents=True)
    (root / "empty-dir").mkdir()
    (root / "empty-file").write_bytes(b"")
    (root / "small.txt").write_text("hello")
    (root / "sub" / "big.bin").write_bytes(os.urandom(3_000_000))
    (root / "sub" / "deeper" / "x").write_text("x" * 100)
    (root / "sub" / "script.sh").write_text("#!/bin/sh\n")
    os.chmod(root / "sub" / "script.sh", 0o750)
    os.chmod(root / "sub" / "deeper", 0o700)
    os.symlink("small.txt", root / "rel-link")
    os.symlink("/nonexistent/target", root / "sub" / "dangling")
    for path in [*root.rglob("*"), root]:  # links too: a copy keeps their own times
        os.utime(path, ns=(MTIME, MTIME), follow_symlinks=False)


class Hosts:
    """Separate "hosts" on this machine: each a wrapping connector rooted in its own directory."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.connectors: dict[str, WrappingConnector] = {}

    def add(
        self, name: str, kind: type[WrappingConnector] = WrappingConnector, **faults: object
    ) -> ExecutionLocation:
        (self.base / name).mkdir(parents=True)
        self.connectors[name] = kind(str(self.base / name), **faults)  # type: ignore[arg-type]
        return ExecutionLocation(name, "localhost", local=True)

    def path(self, name: str, path: str) -> Path:
        return self.base / name / path.lstrip("/")


def leftovers(directory: Path) -> list[str]:
    """Temporary files and staging trees in ``directory``."""
    return [name for name in os.listdir(directory) if name.endswith(".sfd-part")]


def descriptors_on(path: Path) -> list[int]:
    """This process's open descriptors on ``path`` (removed since, or not)."""
    found = []
    for name in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{name}") in (str(path), f"{path} (deleted)"):
                found.append(int(name))
        except FileNotFoundError:  # the listing's own descriptor, closed since
            continue
    return found


async def cancel_blocked_open(opening: asyncio.Task[Any], fifo: Path, other_end: int) -> None:
    """Cancel ``opening``, a task blocked opening ``fifo``, then open the FIFO's other end
    (with the flags ``other_end``) so that the open in its worker thread returns: the
    cancelled task must leave no descriptor on the FIFO but the other end's."""
    await asyncio.sleep(0.2)
    assert not opening.done()
    opening.cancel()
    other = await asyncio.to_thread(os.open, fifo, other_end)
    try:
        with pytest.raises(asyncio.CancelledError):
            await opening
        assert descriptors_on(fifo) == [other]
    finally:
        os.close(other)


async def journaled_bytes(catalog: str) -> int | None:
    """The written chunk bytes the journal in ``catalog`` (a file or a PostgreSQL URL)
    records; None before the catalog exists."""
    if not is_postgres(catalog) and not await asyncio.to_thread(os.path.exists, catalog):
        return None
    try:
        opened = await Catalog.open(CatalogSettings(path=catalog, busy_timeout=1.0))
    except CatalogError:
        return None
    try:
        [(done,)] = await opened.database.fetch_all("SELECT sum(done) FROM chunk_marks")
    finally:
        await opened.close()
    return int(done or 0)


async def wait_for_progress(catalog: str, least: int = 4 * MiB) -> None:
    """Until the journal of the running copy records ``least`` written chunk bytes."""
    for _ in range(500):  # bounded: 10 s
        await asyncio.sleep(0.02)
        done = await journaled_bytes(catalog)
        if done is not None and done >= least:
            return
    raise AssertionError("the copy never made progress")


class LastSnapshot:
    """A listener keeping the last snapshot of the transfers it hears, and their count."""

    def __init__(self) -> None:
        self.last: TransferProgress | None = None
        self.count = 0

    def __call__(self, progress: TransferProgress) -> None:
        if progress.finished:
            self.last = progress
            self.count += 1


async def copy_slowly(
    catalog: str,
    src: Path,
    targets: list[Path],
    *,
    delay: float = 0.0,
    settings: TransferSettings | None = None,
) -> TransferProgress:
    """Copy ``src`` (read with ``delay`` seconds per read) to each local target, writable,
    with a catalog; the transfer's last snapshot."""
    finished = LastSnapshot()
    connectors = {"source": SlowSourceConnector(delay)}
    async with DefaultDataManager(
        connectors, catalog=catalog, listeners=[finished], settings=settings
    ) as manager:
        source = manager.locations("source")[0]
        local = manager.locations()[0]
        manager.register_path(source, str(src))
        await manager.transfer_to(
            source, str(src), [(local, str(target)) for target in targets], writable=True
        )
    assert finished.last is not None
    return finished.last
