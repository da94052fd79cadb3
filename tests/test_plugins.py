"""Connector discovery by entry points, with a plugin really installed for this session."""

from __future__ import annotations

import asyncio
import importlib
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from streamflow_data import (
    ConfigurationError,
    Connector,
    ConnectorNotFoundError,
    DataType,
    DefaultDataManager,
    ExecutionLocation,
    connector_class,
    connector_types,
    create_connector,
)
from streamflow_data.connectors.registry import ENTRY_POINT_GROUP
from streamflow_data.testing import ConnectorConformance, ConnectorHarness
from tests.wrappers import WrappingConnector

PLUGIN = Path(__file__).parent.parent / "plugins" / "memory"


@pytest.fixture(scope="session")
def installed_plugins(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """pip-install the example plugin into a private directory put on sys.path.

    A second, deliberately broken plugin is declared beside it by its metadata alone.
    """
    target = tmp_path_factory.mktemp("site")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(target),
            str(PLUGIN),
        ],
        check=True,
    )
    broken = target / "sfd_broken_plugin-0.1.dist-info"
    broken.mkdir()
    (broken / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: sfd-broken-plugin\nVersion: 0.1\n"
    )
    (broken / "entry_points.txt").write_text(
        f"[{ENTRY_POINT_GROUP}]\nbroken = sfd_no_such_module:Nothing\nnotaclass = os:path\n"
    )
    sys.path.insert(0, str(target))
    importlib.invalidate_caches()
    yield target
    sys.path.remove(str(target))


@pytest.mark.usefixtures("installed_plugins")
def test_installed_plugins_are_discovered() -> None:
    assert {"local", "memory", "broken"} <= set(connector_types())
    memory = connector_class("memory")
    assert issubclass(memory, Connector)
    assert memory.__module__ == "streamflow_data_memory"


@pytest.mark.usefixtures("installed_plugins")
def test_plugin_options_are_validated() -> None:
    connector = create_connector("memory", {"locations": ["a", "b"]})
    assert [loc.name for loc in connector.locations("mem")] == ["a", "b"]
    with pytest.raises(ConfigurationError, match="locations"):
        create_connector("memory", {"locations": []})
    with pytest.raises(ConfigurationError, match="unknown"):
        create_connector("local", {"unknown": 1})
    with pytest.raises(ConfigurationError, match="WrappingConnector takes no options, got: x"):
        WrappingConnector.from_options({"x": 1})


@pytest.mark.usefixtures("installed_plugins")
def test_unknown_and_broken_plugins_are_reported() -> None:
    with pytest.raises(ConnectorNotFoundError, match=r"'nonexistent'.*local.*memory"):
        connector_class("nonexistent")
    with pytest.raises(ConfigurationError, match=r"'broken'.*failed to load"):
        connector_class("broken")
    with pytest.raises(ConfigurationError, match="not a Connector subclass"):
        connector_class("notaclass")


@pytest.mark.usefixtures("installed_plugins")
async def test_the_manager_moves_data_through_a_plugin(tmp_path: Path) -> None:
    memory = await asyncio.to_thread(create_connector, "memory", {"locations": ["m0", "m1"]})
    local = ExecutionLocation("local", "localhost", local=True)
    m0, m1 = (ExecutionLocation("mem", name) for name in ("m0", "m1"))
    source = tmp_path / "file.bin"
    await asyncio.to_thread(source.write_bytes, b"plugin bytes" * 1000)
    async with DefaultDataManager({"mem": memory}) as manager:
        manager.register_path(local, str(source))
        await manager.transfer_data(local, str(source), [m0, m1], "/in/file.bin")
        assert await memory.read_file(m1, "/in/file.bin") == b"plugin bytes" * 1000
        replicas = manager.get_data_locations("/in/file.bin", deployment="mem")
        assert {r.name for r in replicas} == {"m0", "m1"}
        assert all(r.data_type is DataType.PRIMARY for r in replicas)
        assert await manager.get_source_location(str(source), "mem") in replicas


@pytest.mark.usefixtures("installed_plugins")
class TestMemoryPluginConformance(ConnectorConformance):
    """The third-party connector runs the shared suite unchanged."""

    @pytest.fixture
    async def harness(self) -> AsyncIterator[ConnectorHarness]:
        connector = await asyncio.to_thread(create_connector, "memory", {})
        location = connector.locations("mem")[0]
        await connector.mkdir(location, "/scratch")
        yield ConnectorHarness(connector, "mem", location, "/scratch")
        await connector.close()
