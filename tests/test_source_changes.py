"""A source changed while it is read is never published torn: read again, or failed."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from streamflow_data import ConnectorError, DefaultDataManager, TransferError
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
        assert isinstance(failure.cause, ConnectorError) and failure.cause.retryable
        assert "changed during the transfer: it was written to" in str(failure.cause)
        assert not await asyncio.to_thread(hosts.path("stalled", "/c.bin").exists)
        assert manager.get_data_locations("/c.bin", deployment="stalled") == []
    finally:
        await manager.close()
