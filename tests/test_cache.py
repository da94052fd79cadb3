"""The local replica cache: fetched replicas stay within a byte budget, LRU, pins respected."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from streamflow_data import (
    CacheFullError,
    CacheSettings,
    DefaultDataManager,
    ExecutionLocation,
    TransferError,
)
from tests.conftest import LOCAL
from tests.helpers import Hosts
from tests.wrappers import WrappingConnector

MB = 1_000_000


@pytest.fixture
async def remote(tmp_path: Path) -> tuple[Hosts, ExecutionLocation]:
    hosts = Hosts(tmp_path / "hosts")
    location = hosts.add("remote")
    for name in ["f1", "f2", "f3", "huge"]:
        size = 20 * MB if name == "huge" else 4 * MB
        hosts.path("remote", f"/{name}").write_bytes(os.urandom(size))
    return hosts, location


class _RemoteHost(WrappingConnector):
    def locations(self, deployment: str) -> Sequence[ExecutionLocation]:
        return (ExecutionLocation(deployment, "localhost"),)


def _manager(
    hosts: Hosts,
    on_evict: Callable[[ExecutionLocation, str], None] | None = None,
    **cache: object,
) -> DefaultDataManager:
    settings = CacheSettings(budget=10 * MB, **cache)  # type: ignore[arg-type]
    return DefaultDataManager(dict(hosts.connectors), cache=settings, on_evict=on_evict)


async def _fetch(
    manager: DefaultDataManager, remote: ExecutionLocation, name: str, to: Path
) -> None:
    manager.register_path(remote, f"/{name}")
    await manager.transfer_data(remote, f"/{name}", [LOCAL], str(to / name))


def _local_replicas(manager: DefaultDataManager, path: Path) -> list[str]:
    return [r.path for r in manager.get_data_locations(str(path), deployment="local")]


async def test_least_recently_used_replicas_are_evicted_first(
    remote: tuple[Hosts, ExecutionLocation], tmp_path: Path
) -> None:
    hosts, location = remote
    cache = tmp_path / "cache"
    evicted: list[tuple[ExecutionLocation, str]] = []

    def on_evict(where: ExecutionLocation, path: str) -> None:
        evicted.append((where, path))

    async with _manager(hosts, on_evict) as manager:
        await _fetch(manager, location, "f1", cache)
        await _fetch(manager, location, "f2", cache)
        used = await manager.get_source_location(str(cache / "f1"), "local")  # a hit
        assert used is not None and used.deployment == "local"
        await _fetch(manager, location, "f3", cache)  # 12 MB > 10 MB: f2 goes
        assert sorted(os.listdir(cache)) == ["f1", "f3"]
        assert evicted == [(LOCAL, str(cache / "f2"))]
        assert _local_replicas(manager, cache / "f2") == []
        assert _local_replicas(manager, cache / "f1") == [str(cache / "f1")]
        # the remote replica of f2 is still known: it can be fetched again
        assert [r.deployment for r in manager.get_data_locations(str(cache / "f2"))] == []
        assert len(manager.get_data_locations("/f2")) == 1
        stats = manager.statistics.cache
        assert (stats.hits, stats.misses, stats.evictions) == (1, 3, 1)
        assert stats.bytes_evicted == 4 * MB and stats.bytes_used == 8 * MB
        assert stats.budget == 10 * MB


async def test_pinned_replicas_are_never_evicted(
    remote: tuple[Hosts, ExecutionLocation], tmp_path: Path
) -> None:
    hosts, location = remote
    cache = tmp_path / "cache"
    async with _manager(hosts, when_full="fail") as manager:
        await _fetch(manager, location, "f1", cache)
        await _fetch(manager, location, "f2", cache)
        for name in ["f1", "f2"]:
            [replica] = manager.get_data_locations(str(cache / name), deployment="local")
            assert manager.pin(replica)
        with pytest.raises(TransferError) as caught:
            await _fetch(manager, location, "f3", cache)
        [failure] = caught.value.failures
        assert isinstance(failure.cause, CacheFullError)
        assert "8000000 bytes are pinned" in str(failure.cause)
        assert sorted(os.listdir(cache)) == ["f1", "f2"]  # nothing written, nothing lost
        manager.unpin(replica)  # f2
        await _fetch(manager, location, "f3", cache)
        assert sorted(os.listdir(cache)) == ["f1", "f3"]


async def test_a_copy_waits_for_room_when_configured(
    remote: tuple[Hosts, ExecutionLocation], tmp_path: Path
) -> None:
    hosts, location = remote
    cache = tmp_path / "cache"
    async with _manager(hosts, when_full="wait", wait_timeout=30) as manager:
        await _fetch(manager, location, "f1", cache)
        await _fetch(manager, location, "f2", cache)
        replicas = [
            manager.get_data_locations(str(cache / name), deployment="local")[0]
            for name in ["f1", "f2"]
        ]
        for replica in replicas:
            manager.pin(replica)
        waiting = asyncio.create_task(_fetch(manager, location, "f3", cache))
        await asyncio.sleep(0.3)
        assert not waiting.done()
        manager.unpin(replicas[0])
        await waiting
        assert sorted(os.listdir(cache)) == ["f2", "f3"]


async def test_a_source_in_use_is_not_evicted(
    remote: tuple[Hosts, ExecutionLocation], tmp_path: Path
) -> None:
    hosts, location = remote
    hosts.add("stalled", _RemoteHost, stall_writes=True)
    stalled = ExecutionLocation("stalled", "localhost")  # not the local node: not cached
    cache = tmp_path / "cache"
    async with _manager(hosts, when_full="fail") as manager:
        await _fetch(manager, location, "f1", cache)
        await _fetch(manager, location, "f2", cache)
        [f2] = manager.get_data_locations(str(cache / "f2"), deployment="local")
        manager.pin(f2)
        upload = asyncio.create_task(
            manager.transfer_data(LOCAL, str(cache / "f1"), [stalled], "/up")
        )
        await hosts.connectors["stalled"].write_started.wait()
        with pytest.raises(TransferError, match="does not fit"):
            await _fetch(manager, location, "f3", cache)
        hosts.connectors["stalled"].release.set()
        await upload
        await _fetch(manager, location, "f3", cache)  # f1 is free again: evicted
        assert sorted(os.listdir(cache)) == ["f2", "f3"]


async def test_a_copy_larger_than_the_budget_fails_at_once(
    remote: tuple[Hosts, ExecutionLocation], tmp_path: Path
) -> None:
    hosts, location = remote
    async with _manager(hosts) as manager:
        with pytest.raises(TransferError, match="larger than the whole cache budget"):
            await _fetch(manager, location, "huge", tmp_path / "cache")
        assert manager.statistics.cache.bytes_used == 0
