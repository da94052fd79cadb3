"""The SSH connector passes the shared connector conformance suite, unchanged."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from streamflow_data_ssh import SSHConnector

from streamflow_data.testing import ConnectorConformance, ConnectorHarness
from tests.ssh.conftest import OptionsFactory


class TestSSHConformance(ConnectorConformance):
    @pytest.fixture(
        params=[("sha256", "openssh"), ("none", "openssh"), ("none", "asyncssh")], ids="-".join
    )
    async def harness(
        self, request: pytest.FixtureRequest, ssh_options: OptionsFactory, remote_dir: Path
    ) -> AsyncIterator[ConnectorHarness]:
        verify, streams = request.param
        connector = SSHConnector(ssh_options(verify=verify, streams=streams))
        root = remote_dir
        yield ConnectorHarness(connector, "ssh", connector.locations("ssh")[0], str(root))
        await connector.close()
