"""The import names and method signatures are part of the contract."""

from __future__ import annotations

import ast
import asyncio
import dataclasses
import importlib
import inspect
from collections.abc import Sequence
from pathlib import Path

import pytest

import streamflow_data
from streamflow_data import (
    Connector,
    DataLocation,
    DataManager,
    DataType,
    DefaultDataManager,
    ExecutionLocation,
    LocalConnector,
    RemotePathMapper,
    sdk,
    shell,
)

CONTRACT_NAMES = {
    "DataManager",
    "DefaultDataManager",
    "DataLocation",
    "ExecutionLocation",
    "DataType",
    "RemotePathMapper",
    "Connector",
    "LocalConnector",
    "StreamFlowDataError",
    "UnknownPathError",
    "UnknownLocationError",
    "UnknownDeploymentError",
    "TransferError",
}


def test_all_lists_exactly_what_the_package_exports() -> None:
    exported = set(streamflow_data.__all__)
    assert exported >= CONTRACT_NAMES
    assert len(streamflow_data.__all__) == len(exported), "duplicates in __all__"
    public = {name for name in vars(streamflow_data) if not name.startswith("_")}
    modules = {name for name in public if inspect.ismodule(getattr(streamflow_data, name))}
    assert public - modules == exported - {"__version__"}
    for name in exported:
        assert getattr(streamflow_data, name) is not None


def test_every_exported_name_is_documented() -> None:
    for name in streamflow_data.__all__:
        value = getattr(streamflow_data, name)
        if inspect.isclass(value) or inspect.isfunction(value):
            assert inspect.getdoc(value), f"{name} has no docstring"


def test_data_manager_has_exactly_the_seven_contract_methods() -> None:
    abstract = DataManager.__abstractmethods__
    assert abstract == {
        "register_path",
        "register_relation",
        "invalidate_location",
        "get_data_locations",
        "get_source_location",
        "transfer_data",
        "close",
    }
    asynchronous = {"get_source_location", "transfer_data", "close"}
    for name in abstract:
        method = getattr(DataManager, name)
        assert inspect.iscoroutinefunction(method) == (name in asynchronous), name
        assert inspect.iscoroutinefunction(getattr(DefaultDataManager, name)) == (
            name in asynchronous
        ), name


@pytest.mark.parametrize(
    ("name", "parameters"),
    [
        ("register_path", ["self", "location", "path", "relpath", "data_type"]),
        ("register_relation", ["self", "src_location", "dst_location"]),
        ("invalidate_location", ["self", "location", "path"]),
        ("get_data_locations", ["self", "path", "deployment", "location_name", "data_type"]),
        ("get_source_location", ["self", "path", "dst_deployment"]),
        (
            "transfer_data",
            ["self", "src_location", "src_path", "dst_locations", "dst_path", "writable"],
        ),
        ("close", ["self"]),
    ],
)
def test_contract_signatures(name: str, parameters: list[str]) -> None:
    for cls in (DataManager, DefaultDataManager):
        signature = inspect.signature(getattr(cls, name))
        assert list(signature.parameters) == parameters, f"{cls.__name__}.{name}"
    all_defaults: dict[str, dict[str, object]] = {
        "register_path": {"relpath": None, "data_type": DataType.PRIMARY},
        "get_data_locations": {"deployment": None, "location_name": None, "data_type": None},
        "transfer_data": {"writable": False},
    }
    defaults = all_defaults.get(name, {})
    signature = inspect.signature(getattr(DefaultDataManager, name))
    for parameter, default in defaults.items():
        assert signature.parameters[parameter].default == default


def test_default_data_manager_constructor() -> None:
    signature = inspect.signature(DefaultDataManager)
    assert next(iter(signature.parameters)) == "connectors"
    assert signature.parameters["connectors"].default is None
    assert signature.parameters["policy"].kind is inspect.Parameter.KEYWORD_ONLY


def test_execution_location_is_frozen_and_hashable() -> None:
    location = ExecutionLocation("dep", "node")
    assert location.local is False
    assert ExecutionLocation(deployment="dep", name="node") == location
    assert hash(ExecutionLocation("dep", "node")) == hash(location)
    assert len({location, ExecutionLocation("dep", "node"), ExecutionLocation("dep", "b")}) == 2
    with pytest.raises(dataclasses.FrozenInstanceError):
        location.name = "other"  # type: ignore[misc]


def test_data_type_members() -> None:
    assert {member.name for member in DataType} == {"PRIMARY", "SYMBOLIC_LINK", "INVALID"}


def test_data_location_exposes_its_location() -> None:
    location = ExecutionLocation("dep", "node")
    replica = DataLocation(location, "/data/x", "x")
    assert (replica.deployment, replica.name, replica.path, replica.relpath) == (
        "dep",
        "node",
        "/data/x",
        "x",
    )
    assert replica.available and replica.valid
    assert DataLocation(location, "/data/y").relpath == "/data/y"


def test_local_connector_is_a_connector_with_one_localhost_location() -> None:
    assert issubclass(LocalConnector, Connector)
    assert isinstance(RemotePathMapper(), RemotePathMapper)
    connector = LocalConnector()
    try:
        assert list(connector.locations("D")) == [
            ExecutionLocation(deployment="D", name="localhost", local=True)
        ]
    finally:
        asyncio.run(connector.close())


def test_exceptions_share_one_base() -> None:
    errors: Sequence[type[BaseException]] = [
        value
        for value in map(streamflow_data.__dict__.get, streamflow_data.__all__)
        if inspect.isclass(value) and issubclass(value, BaseException)
    ]
    assert len(errors) >= 14
    assert all(issubclass(error, streamflow_data.StreamFlowDataError) for error in errors)


def test_every_public_name_is_in_the_api_reference() -> None:
    reference = (Path(__file__).parent.parent / "docs" / "api.rst").read_text()
    undocumented = [
        name
        for name in streamflow_data.__all__
        if name != "__version__" and f"streamflow_data.{name}\n" not in reference
    ]
    assert undocumented == []


PUBLIC_MODULES = {
    "streamflow_data",
    "streamflow_data.sdk",
    "streamflow_data.shell",
    "streamflow_data.testing",
}
PLUGIN_MODULES = sorted((Path(__file__).parent.parent / "plugins").glob("*/streamflow_data_*/*.py"))


@pytest.mark.parametrize("path", PLUGIN_MODULES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_plugins_import_only_what_the_package_makes_public(path: Path) -> None:
    """The shipped plugins are written as a third party's would be: from the core, they
    import the names of ``__all__`` of the public modules only."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [
                alias.name for alias in node.names if alias.name.startswith("streamflow_data.")
            ]
            assert all(name in PUBLIC_MODULES for name in names), names
        elif isinstance(node, ast.ImportFrom) and node.module:
            top = node.module.split(".")[0]
            if top != "streamflow_data":
                continue
            assert node.module in PUBLIC_MODULES, f"{path.name} imports {node.module}"
            exported = importlib.import_module(node.module).__all__
            private = [alias.name for alias in node.names if alias.name not in exported]
            assert private == [], f"{path.name} imports {private} from {node.module}"


def test_every_name_of_the_plugin_sdk_is_documented() -> None:
    api = (Path(__file__).parent.parent / "docs" / "api.rst").read_text()
    for name in sdk.__all__:
        value = getattr(sdk, name)
        assert inspect.getdoc(value), f"{name} has no docstring"
        assert name in streamflow_data.__all__ or f"streamflow_data.sdk.{name}" in api, name


def test_every_name_of_the_shell_layer_is_exported_and_documented() -> None:
    api = (Path(__file__).parent.parent / "docs" / "api.rst").read_text()
    public = {name for name in vars(shell) if not name.startswith("_")}
    modules = {name for name in public if inspect.ismodule(getattr(shell, name))}
    assert public - modules - {"annotations"} == set(shell.__all__)
    for name in shell.__all__:
        value = getattr(shell, name)
        if inspect.isclass(value) or inspect.isfunction(value):
            assert inspect.getdoc(value), f"{name} has no docstring"
        assert f"streamflow_data.shell.{name}" in api, name
