"""Rule 5: source selection and waiting for replicas being written."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence

import pytest

from streamflow_data import (
    DataLocation,
    DataManager,
    DataType,
    DefaultDataManager,
    DefaultSourcePolicy,
    ExecutionLocation,
    StreamFlowDataError,
)

DST = ExecutionLocation("hpc", "login")
DST_OTHER = ExecutionLocation("hpc", "compute-7")
LOCAL = ExecutionLocation("local", "localhost", local=True)
PENDING = "makes a pending replica in the graph itself (tests/service: through a transfer)"
REMOTES = [ExecutionLocation("cloud", f"vm-{i}") for i in range(4)]


@pytest.fixture
def manager(contract_manager: DataManager) -> DataManager:
    """The contract's rules hold in this process and through a service alike."""
    return contract_manager


def related(
    manager: DefaultDataManager, *pairs: tuple[ExecutionLocation, str]
) -> list[DataLocation]:
    replicas = [manager.register_path(location, path) for location, path in pairs]
    for replica in replicas[1:]:
        manager.register_relation(replicas[0], replica)
    return replicas


async def test_prefers_a_primary_on_the_destination_deployment(
    manager: DefaultDataManager,
) -> None:
    *_, on_dst = related(manager, (LOCAL, "/l/f"), (REMOTES[0], "/r/f"), (DST_OTHER, "/h/f"))
    for path in ("/l/f", "/r/f", "/h/f"):
        assert await manager.get_source_location(path, "hpc") is on_dst


async def test_then_a_primary_on_the_local_node(manager: DefaultDataManager) -> None:
    _, on_local, _ = related(manager, (REMOTES[0], "/r/f"), (LOCAL, "/l/f"), (REMOTES[1], "/r/f"))
    assert await manager.get_source_location("/r/f", "hpc") is on_local


async def test_links_are_never_sources(manager: DefaultDataManager) -> None:
    primary = manager.register_path(REMOTES[0], "/r/f")
    link = manager.register_path(DST, "/h/f", data_type=DataType.SYMBOLIC_LINK)
    manager.register_relation(primary, link)
    assert await manager.get_source_location("/h/f", "hpc") is primary


async def test_then_a_random_primary_and_every_candidate_appears(
    manager: DefaultDataManager,
) -> None:
    replicas = related(manager, *[(location, "/r/f") for location in REMOTES])
    chosen = {id(await manager.get_source_location("/r/f", "hpc")) for _ in range(200)}
    assert chosen == {id(replica) for replica in replicas}


async def test_none_when_nothing_valid(manager: DefaultDataManager) -> None:
    assert await manager.get_source_location("/nothing", "hpc") is None
    manager.register_path(REMOTES[0], "/r/f")
    manager.invalidate_location(REMOTES[0], "/r/f")
    assert await manager.get_source_location("/r/f", "hpc") is None
    manager.register_path(REMOTES[1], "/r/g", data_type=DataType.SYMBOLIC_LINK)
    assert await manager.get_source_location("/r/g", "hpc") is None


async def test_the_policy_is_a_parameter() -> None:
    class LastCandidate:
        def select(
            self, candidates: Sequence[DataLocation], dst_deployment: str
        ) -> DataLocation | None:
            return candidates[-1] if candidates else None

    async with DefaultDataManager(policy=LastCandidate()) as manager:
        replicas = related(manager, (DST, "/a"), (LOCAL, "/b"), (REMOTES[0], "/c"))
        assert await manager.get_source_location("/a", "hpc") is replicas[-1]


async def test_default_policy_is_reproducible_with_a_seeded_rng(
    manager: DefaultDataManager,
) -> None:
    replicas = related(manager, *[(location, "/r/f") for location in REMOTES])
    picks = [DefaultSourcePolicy(random.Random(3)).select(replicas, "x") for _ in range(2)]
    assert picks[0] is picks[1]


@pytest.mark.in_process_only(PENDING)
async def test_waits_for_a_replica_being_written(manager: DefaultDataManager) -> None:
    source = manager.register_path(REMOTES[0], "/r/f")
    pending = manager.mapper.register(DST, "/h/f", available=False)
    manager.register_relation(source, pending)
    waiter = asyncio.create_task(manager.get_source_location("/r/f", "hpc"))
    await asyncio.sleep(0.01)
    assert not waiter.done(), "returned a replica that is still being written"
    pending.mark_available()
    assert await asyncio.wait_for(waiter, 1) is pending


@pytest.mark.in_process_only(PENDING)
async def test_chooses_again_when_the_awaited_replica_fails(manager: DefaultDataManager) -> None:
    source = manager.register_path(REMOTES[0], "/r/f")
    pending = manager.mapper.register(DST, "/h/f", available=False)
    manager.register_relation(source, pending)
    waiter = asyncio.create_task(manager.get_source_location("/r/f", "hpc"))
    await asyncio.sleep(0.01)
    manager.invalidate_location(DST, "/h/f")
    assert await asyncio.wait_for(waiter, 1) is source


async def test_a_policy_choosing_outside_the_candidates_is_an_error() -> None:
    class Stray:
        def select(
            self, candidates: Sequence[DataLocation], dst_deployment: str
        ) -> DataLocation | None:
            return DataLocation(LOCAL, "/not/a/candidate")

    async with DefaultDataManager(policy=Stray()) as manager:
        manager.register_path(REMOTES[0], "/r/f")
        with pytest.raises(StreamFlowDataError, match="not a candidate"):
            await manager.get_source_location("/r/f", "hpc")
