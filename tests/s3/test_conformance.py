"""The S3 connector passes the shared connector conformance suite, unchanged."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from streamflow_data_s3 import S3Connector

from streamflow_data.testing import ConnectorConformance, ConnectorHarness
from tests.s3.conftest import OptionsFactory


class TestS3Conformance(ConnectorConformance):
    @pytest.fixture
    async def harness(self, s3_options: OptionsFactory) -> AsyncIterator[ConnectorHarness]:
        connector = S3Connector(s3_options())
        location = connector.locations("s3")[0]
        await connector.mkdir(location, "/scratch/test")
        yield ConnectorHarness(connector, "s3", location, "/scratch/test")
        await connector.close()
