"""Which connector serves each StreamFlow deployment: the SSH plugin configured from an
``ssh`` deployment, the shell layer over StreamFlow's connector for what the plugin does
not do, and StreamFlow's own copy methods where that shell lacks the tools."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from streamflow_data_ssh import SSHConnector, SSHOptions
from streamflow_data_streamflow import ssh_options

from tests.ssh.sshd import SSHServer, client_key, owned_directory, start_server
from tests.streamflow.conftest import LOCAL, MANAGERS, Contexts, ssh_deployment, ssh_location


def test_an_ssh_deployment_becomes_the_plugins_options(tmp_path: Path) -> None:
    options = ssh_options(
        {
            "nodes": ["login.example.org", {"hostname": "10.0.0.7:2222", "username": "bob"}],
            "username": "alice",
            "sshKey": "keys/id",
            "sshKeyPassphraseFile": "/etc/phrase",
            "checkHostKey": False,
            "maxConcurrentSessions": 100,
            "retries": 2,
            "services": {"x": "y"},  # StreamFlow's own concern
        },
        str(tmp_path),
    )
    assert isinstance(options, SSHOptions)
    assert [(n.hostname, n.port, n.username, n.location_name) for n in options.nodes] == [
        ("login.example.org", 22, None, "login.example.org"),
        ("10.0.0.7", 2222, "bob", "10.0.0.7_2222"),
    ]
    assert options.username == "alice" and options.client_keys == [str(tmp_path / "keys/id")]
    assert options.passphrase_file == "/etc/phrase" and not options.check_host_keys
    assert (options.max_sessions, options.retries) == (64, 2)


@pytest.mark.parametrize(
    ("config", "reason"),
    [
        ({"nodes": ["h"], "passwordFile": "pw"}, "passwordFile"),
        ({"nodes": ["h"], "tunnel": {"hostname": "gw"}}, "tunnel"),
        ({"nodes": [{"hostname": "h", "sshKey": "k"}]}, "options of its own"),
        ({"nodes": []}, "nodes"),
    ],
)
def test_what_the_plugin_does_not_do_is_said(config: dict[str, object], reason: str) -> None:
    found = ssh_options(config, "/")
    assert isinstance(found, str) and reason in found


@pytest.fixture
def blockbuster() -> None:
    """StreamFlow's SSH connector reads a password file on the event loop, which the
    shared fixture would flag as ours when our transport calls it."""


@pytest.fixture
def toolless_host(ssh_base: Path) -> Iterator[tuple[SSHServer, Path]]:
    """An sshd whose sessions find every program but ``dd``; a directory for its files."""
    base = Path(tempfile.mkdtemp(dir=ssh_base))
    base.chmod(0o755)
    tools = base / "bin"
    tools.mkdir(mode=0o755)
    for directory in ("/usr/local/bin", "/usr/bin", "/bin"):
        for name in os.listdir(directory):
            if name != "dd" and not (tools / name).exists():
                (tools / name).symlink_to(os.path.join(directory, name))
    host = base.with_name(base.name + "-host")  # beside the session's key, as fixtures expect
    server = start_server("no-dd", host, client_key(ssh_base), settings=f"SetEnv PATH={tools}\n")
    yield server, owned_directory(base / "files")
    server.stop()


async def test_a_location_without_the_tools_falls_back_to_streamflows_copies(
    tmp_path: Path,
    toolless_host: tuple[SSHServer, Path],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An ``ssh`` deployment the plugin does not do (a password file) goes through the
    shell layer over StreamFlow's connector, whose probe finds no ``dd``: StreamFlow's own
    copy methods move the data, and why is logged once."""
    server, files = toolless_host
    (tmp_path / "pw").write_text("unused\n")
    contexts = Contexts(tmp_path, [])
    try:
        context = await contexts.open(MANAGERS[1])
        await context.deployment_manager.deploy(
            ssh_deployment("odd", server, passwordFile=str(tmp_path / "pw"))
        )
        manager = context.data_manager
        host = ssh_location("odd", server)
        for name in ("one", "two"):
            await asyncio.to_thread((tmp_path / name).write_bytes, os.urandom(5000))
            manager.register_path(LOCAL, str(tmp_path / name), relpath=name)
            with caplog.at_level(logging.INFO, logger="streamflow"):
                await manager.transfer_data(LOCAL, str(tmp_path / name), [host], str(files / name))
            copied = await asyncio.to_thread((files / name).read_bytes)
            assert copied == await asyncio.to_thread((tmp_path / name).read_bytes)
            replicas = manager.get_data_locations(str(files / name))
            assert sorted(r.deployment for r in replicas) == ["__LOCAL__", "odd"]
        fallbacks = [r for r in caplog.records if "own copy methods" in r.getMessage()]
        assert len(fallbacks) == 1 and "dd" in fallbacks[0].getMessage()
        assert all(loc.deployment != "odd" for loc in manager.engine.statistics.locations)
    finally:
        await contexts.close()


@pytest.mark.parametrize(
    ("config", "accepted"),
    [
        ({}, True),
        ({"catalog": "/tmp/run.sqlite", "transfer": {"block_size": 1 << 20}}, True),
        ({"cache": {"budget": 1 << 30}}, True),
        ({"transfer": {"block_size": 1}}, False),
        ({"catlog": ":memory:"}, False),
    ],
)
def test_streamflow_checks_the_config_against_the_plugins_schema(
    config: dict[str, object], accepted: bool
) -> None:
    from streamflow.config.validator import SfValidator
    from streamflow.core.exception import WorkflowDefinitionException

    document = {
        "version": "v1.0",
        "workflows": {"w": {"type": "cwl", "config": {"file": "w.cwl"}}},
        "dataManager": {"type": "streamflow-data", "config": config},
    }
    if accepted:
        SfValidator().validate(document)
    else:
        with pytest.raises(WorkflowDefinitionException):
            SfValidator().validate(document)


def test_the_shipped_schema_is_the_one_the_options_generate() -> None:
    from streamflow_data_streamflow import StreamFlowDataManager
    from streamflow_data_streamflow.options import json_schema

    assert StreamFlowDataManager.get_schema() == json_schema(), (
        "regenerate plugins/streamflow/streamflow_data_streamflow/data_manager.json with "
        "python -c 'from streamflow_data_streamflow.options import json_schema; "
        'print(json_schema(), end="")\' > that file'
    )


def test_loading_the_plugin_imports_none_of_the_engine() -> None:
    """StreamFlow loads every installed plugin at each start, whichever data manager the
    run uses: loading ours, and validating a ``streamflow.yml`` against its schema, must
    not import this project's engine (nor pydantic)."""
    script = """
import sys
from streamflow.config.validator import SfValidator
from streamflow.ext.utils import load_extensions
from streamflow_data_streamflow import StreamFlowDataManager
load_extensions()
SfValidator().validate({
    "version": "v1.0",
    "workflows": {"w": {"type": "cwl", "config": {"file": "w.cwl"}}},
    "dataManager": {"type": "streamflow-data", "config": {"catalog": ":memory:"}},
})
print(sorted(m for m in sys.modules if m.split(".")[0] in ("streamflow_data", "pydantic")))
"""
    shown = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert shown == "[]"


async def test_a_location_streamflow_asks_about_is_connected_before_its_first_transfer(
    tmp_path: Path, remote_dir: Path, contexts: Contexts
) -> None:
    """StreamFlow asks what data a step's working directory holds before it copies the
    step's inputs there: that question has the SSH plugin connect and start a command
    runner in the background. The transfer then makes the directory and asks whether the
    destination is one at once: the runner takes one command, and the other starts a
    second runner (sent one after the other, both would have taken the first)."""
    context = await contexts.open(MANAGERS[1])
    manager = context.data_manager
    host = ssh_location("ssh-a", contexts.servers[0])
    workdir = owned_directory(remote_dir / "work")
    assert manager.get_data_locations(str(workdir), "ssh-a", host.name) == []
    [ours] = manager.engine.locations("ssh-a")
    connector = manager.engine.connector(ours)
    assert isinstance(connector, SSHConnector)
    for _ in range(200):  # the connection and the login shell: well under 10 s
        if connector.transport(ours).start_up is not None:  # the runner has logged in
            break
        await asyncio.sleep(0.05)
    assert (connector.channels_opened(ours), connector.commands_run(ours)) == (1, 0)
    await asyncio.to_thread((tmp_path / "in").write_bytes, b"data")
    manager.register_path(LOCAL, str(tmp_path / "in"), relpath="in")
    await manager.transfer_data(LOCAL, str(tmp_path / "in"), [host], str(workdir / "out"))
    assert connector.commands_run(ours) > 0 and connector.channels_opened(ours) == 2
    assert await asyncio.to_thread((workdir / "out").read_bytes) == b"data"
