"""Fixtures of the StreamFlow plugin tests: real StreamFlow contexts, with the local
deployment and two SSH deployments on the session's sshd servers, for StreamFlow's own
data manager and for ours.

StreamFlow is installed with ``--pre`` by ``.ci/install``; without it these tests skip.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("streamflow.main", reason="StreamFlow is not installed")
pytest.importorskip("streamflow_data_streamflow", reason="the StreamFlow plugin is not installed")

from streamflow.core.deployment import DeploymentConfig, ExecutionLocation
from streamflow.main import build_context
from streamflow_data_streamflow import DATA_MANAGER_TYPE, StreamFlowDataPlugin

from tests.ssh.sshd import SSHServer
from tests.streamflow.hosts import ssh_config

MANAGERS = ("default", DATA_MANAGER_TYPE)
"""StreamFlow's own data manager, and ours."""


@pytest.fixture(scope="session", autouse=True)
def _plugin() -> None:
    """Register our DataManager type, as StreamFlow's plugin loading does."""
    StreamFlowDataPlugin().register()


def ssh_deployment(name: str, *servers: SSHServer, **extra: Any) -> DeploymentConfig:
    """A StreamFlow ``ssh`` deployment of test servers."""
    config = ssh_config(*servers, retryDelay=1, **extra)
    return DeploymentConfig(name=name, type="ssh", config=config, external=False, lazy=False)


def ssh_location(name: str, server: SSHServer) -> ExecutionLocation:
    host = f"127.0.0.1:{server.port}"
    return ExecutionLocation(name=host, deployment=name, hostname=host)


LOCAL = ExecutionLocation(name="__LOCAL__", deployment="__LOCAL__", local=True)


class Contexts:
    """Builds StreamFlow contexts with a given data manager, and closes them."""

    def __init__(self, workdir: Path, servers: list[SSHServer]) -> None:
        self.workdir, self.servers = workdir, servers
        self.opened: list[Any] = []
        """The contexts built, in order."""

    async def open(self, manager: str, **config: Any) -> Any:
        context = build_context(
            {
                "path": str(self.workdir / "streamflow.yml"),
                "database": {"type": "default", "config": {"connection": ":memory:"}},
                "dataManager": {"type": manager, "config": config},
            }
        )
        self.opened.append(context)
        deploy = context.deployment_manager.deploy
        await deploy(
            DeploymentConfig(name="__LOCAL__", type="local", config={}, external=True, lazy=False)
        )
        for index, server in enumerate(self.servers):
            await deploy(ssh_deployment(f"ssh-{'ab'[index]}", server))
        if len(self.servers) > 1:  # one deployment of two nodes: a job on both gets a fan-out
            await deploy(ssh_deployment("ssh-both", *self.servers))
        return context

    async def close(self) -> None:
        for context in self.opened:
            await context.deployment_manager.undeploy_all()
            await context.close()


@pytest.fixture
async def contexts(tmp_path: Path, ssh_servers: list[SSHServer]) -> AsyncIterator[Contexts]:
    made = Contexts(tmp_path, ssh_servers)
    yield made
    await made.close()
