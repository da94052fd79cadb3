"""The shell connector over local subprocesses passes the conformance suite, unchanged:
the remote-POSIX layer needs of a transport only what its contract asks."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from streamflow_data.testing import ConnectorConformance, ConnectorHarness
from tests.shell.subprocess_transport import SubprocessConnector


class TestSubprocessShellConformance(ConnectorConformance):
    @pytest.fixture(params=[True, False], ids=["verify", "no-verify"])
    async def harness(
        self, request: pytest.FixtureRequest, tmp_path: Path
    ) -> AsyncIterator[ConnectorHarness]:
        connector = SubprocessConnector(verify=request.param)
        yield ConnectorHarness(connector, "shell", connector.locations("shell")[0], str(tmp_path))
        await connector.close()
