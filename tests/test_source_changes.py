"""A source changed while it is read is never published torn: read again, or failed."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from types import SimpleNamespace
from typing import cast

import pytest

from streamflow_data import (
    DefaultDataManager,
    ExecutionLocation,
    LocalConnector,
    SourceChangedError,
    TransferError,
)
from streamflow_data.transfer.context import RunContext
from streamflow_data.transfer.sourcefile import SourceFile
from tests.conftest import LOCAL
from tests.helpers import SIZE, SMALL, Hosts
from tests.test_engine import put_file


def _rewrite_in_place(path: Path, data: bytes) -> None:
    """Overwrite the file's bytes without replacing it (the same inode, the same size)."""
    with path.open("r+b") as file:
        file.write(data)


async def _copy_while_rewritten(
    hosts: Hosts, max_retries: int
) -> tuple[asyncio.Task[None], DefaultDataManager, bytes]:
    source = hosts.add("src")
    await put_file(hosts, "src", "/big.bin")
    stalled = hosts.add("stalled", stall_writes=True)
    manager = DefaultDataManager(hosts.connectors, settings=SMALL.replace(max_retries=max_retries))
    manager.register_path(source, "/big.bin")
    copy = asyncio.create_task(manager.transfer_data(source, "/big.bin", [stalled], "/c.bin"))
    await asyncio.wait_for(hosts.connectors["stalled"].write_started.wait(), 5)
    newer = os.urandom(SIZE)  # while the first blocks wait to be written
    await asyncio.to_thread(_rewrite_in_place, hosts.path("src", "/big.bin"), newer)
    hosts.connectors["stalled"].release.set()
    return copy, manager, newer


async def test_a_source_rewritten_while_read_is_read_again(hosts: Hosts) -> None:
    copy, manager, newer = await _copy_while_rewritten(hosts, max_retries=1)
    try:
        await copy
        assert await asyncio.to_thread(hosts.path("stalled", "/c.bin").read_bytes) == newer
        assert manager.statistics.retries == 1
    finally:
        await manager.close()


async def test_a_source_that_changed_is_neither_published_nor_registered(hosts: Hosts) -> None:
    copy, manager, _ = await _copy_while_rewritten(hosts, max_retries=0)
    try:
        with pytest.raises(TransferError) as caught:
            await copy
        (failure,) = caught.value.failures
        assert isinstance(failure.cause, SourceChangedError) and failure.cause.retryable
        assert str(failure.cause).endswith(": it was written to while it was read")
        assert not await asyncio.to_thread(hosts.path("stalled", "/c.bin").exists)
        assert manager.get_data_locations("/c.bin", deployment="stalled") == []
    finally:
        await manager.close()


def _fed_slowly(fifo: Path, parts: list[bytes]) -> None:
    """Write ``parts`` into ``fifo`` 50 ms apart: a file written to while it is read."""
    with fifo.open("wb", buffering=0) as pipe:
        for part in parts:
            pipe.write(part)
            time.sleep(0.05)


async def test_a_small_file_written_to_while_read_whole_is_never_returned(tmp_path: Path) -> None:
    """The whole-file reads of small files check the file after reading it, as the block
    path does (a named pipe is a file whose writes are timed)."""
    here = ExecutionLocation("local", "localhost", local=True)
    fifo = tmp_path / "written"
    os.mkfifo(fifo)
    connector = LocalConnector()
    try:
        feeder = asyncio.create_task(asyncio.to_thread(_fed_slowly, fifo, [b"a" * 10, b"b" * 10]))
        with pytest.raises(SourceChangedError, match="written to while it was read"):
            await connector.read_file(here, str(fifo))
        await feeder
        feeder = asyncio.create_task(asyncio.to_thread(_fed_slowly, fifo, [b"a" * 10, b"b" * 10]))
        [content] = await connector.read_files(here, [str(fifo)])
        await feeder
        assert isinstance(content, SourceChangedError) and content.retryable
        assert str(fifo) in str(content)
    finally:
        await connector.close()


async def _copy_rewritten_at_commit(
    hosts: Hosts, max_retries: int
) -> tuple[bytes, TransferError | None, bool]:
    """Copy a file whose source is rewritten in place (same size) as its copy is being
    published: after the check that the read was whole, before the copy is registered.
    Returns the newer content, the transfer's error, and whether the copy is registered."""
    source = hosts.add("src")
    await put_file(hosts, "src", "/big.bin")
    target = hosts.add("dst")
    newer = os.urandom(SIZE)
    connector = hosts.connectors["dst"]

    async def rewrite() -> None:
        connector.before_commit = None  # once
        await asyncio.to_thread(_rewrite_in_place, hosts.path("src", "/big.bin"), newer)

    connector.before_commit = rewrite
    error = None
    settings = SMALL.replace(max_retries=max_retries)
    async with DefaultDataManager(hosts.connectors, settings=settings) as manager:
        manager.register_path(source, "/big.bin")
        try:
            await manager.transfer_data(source, "/big.bin", [target], "/c.bin")
        except TransferError as exc:
            error = exc
        registered = bool(manager.get_data_locations("/c.bin", deployment="dst"))
    return newer, error, registered


async def test_a_source_changed_as_its_copy_is_published_is_copied_again(hosts: Hosts) -> None:
    newer, error, registered = await _copy_rewritten_at_commit(hosts, max_retries=1)
    assert error is None and registered
    assert await asyncio.to_thread(hosts.path("dst", "/c.bin").read_bytes) == newer


async def test_a_copy_published_as_its_source_changed_is_not_registered(hosts: Hosts) -> None:
    _, error, registered = await _copy_rewritten_at_commit(hosts, max_retries=0)
    assert error is not None and not registered
    (failure,) = error.failures
    assert isinstance(failure.cause, SourceChangedError)


async def test_a_file_that_grew_before_it_was_opened_is_found_by_its_opened_size(
    tmp_path: Path,
) -> None:
    """A reader that tells the size it opened needs no read past the planned end (over
    SSH that read was one more remote command per file)."""
    path = tmp_path / "f"
    await asyncio.to_thread(path.write_bytes, b"x" * 10)
    connector = LocalConnector()
    planned = await connector.stat(LOCAL, str(path))
    await asyncio.to_thread(path.write_bytes, b"x" * 11)  # grew after the plan
    context = cast(RunContext, SimpleNamespace(source=SimpleNamespace(location=LOCAL)))
    try:
        async with await connector.open_reader(LOCAL, str(path)) as reader:
            assert reader.opened_size == 11
            changed = await SourceFile(context, str(path), planned).change(reader)
    finally:
        await connector.close()
    assert isinstance(changed, SourceChangedError)
    assert str(changed).endswith("its size went from 10 to 11 bytes")
