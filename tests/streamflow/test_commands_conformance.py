"""The shell layer over StreamFlow connectors' own commands (what serves every StreamFlow
deployment the local and SSH connectors do not) passes the conformance suite, unchanged:
over StreamFlow's local connector and over its SSH connector on a real sshd."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from streamflow_data_streamflow import CommandsConnector

from streamflow_data import ExecutionLocation
from streamflow_data.testing import ConnectorConformance, ConnectorHarness
from tests.ssh.sshd import SSHServer
from tests.streamflow.conftest import LOCAL, Contexts, ssh_location


class TestStreamFlowCommandsConformance(ConnectorConformance):
    @pytest.fixture(params=["__LOCAL__", "ssh-a"])
    async def harness(
        self,
        request: pytest.FixtureRequest,
        tmp_path: Path,
        remote_dir: Path,
        ssh_servers: list[SSHServer],
    ) -> AsyncIterator[ConnectorHarness]:
        contexts = Contexts(tmp_path, ssh_servers[:1])
        context = await contexts.open("default")
        deployment: str = request.param
        if deployment == "ssh-a":
            sf_location = ssh_location(deployment, ssh_servers[0])
            root = remote_dir
        else:
            sf_location, root = LOCAL, tmp_path
        connector = CommandsConnector(context.deployment_manager.get_connector(deployment))
        location = ExecutionLocation(deployment, sf_location.name)
        connector.add(location, sf_location)
        yield ConnectorHarness(connector, deployment, location, str(root))
        await connector.close()
        await contexts.close()
