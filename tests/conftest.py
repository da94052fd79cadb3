"""Shared fixtures. Every async test runs under blockbuster: a blocking call on the event
loop thread fails the test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from blockbuster import BlockBuster, blockbuster_ctx

from streamflow_data import DefaultDataManager, ExecutionLocation
from tests.helpers import Hosts

LOCAL = ExecutionLocation(deployment="local", name="localhost", local=True)


@pytest.fixture(autouse=True)
def blockbuster(request: pytest.FixtureRequest) -> Iterator[BlockBuster | None]:
    """Detect blocking calls made on the event loop by streamflow_data (async tests only)."""
    if not hasattr(request.node, "obj") or not _is_async(request.node.obj):
        yield None
        return
    with blockbuster_ctx("streamflow_data") as detector:
        yield detector


def _is_async(function: object) -> bool:
    import inspect

    return inspect.iscoroutinefunction(function)


@pytest.fixture
async def manager() -> AsyncIterator[DefaultDataManager]:
    async with DefaultDataManager() as data_manager:
        yield data_manager


@pytest.fixture
def local() -> ExecutionLocation:
    return LOCAL


@pytest.fixture
def hosts(tmp_path: Path) -> Hosts:
    """Separate "hosts" on this machine, below the test's own directory."""
    return Hosts(tmp_path / "hosts")
