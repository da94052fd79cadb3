"""Test helpers shipped with streamflow-data, for our tests and connector authors'.

:class:`ConnectorConformance` is the suite every connector runs unchanged; see
:mod:`streamflow_data.testing.conformance`. Importing this package requires pytest.
"""

from streamflow_data.testing.conformance import ConnectorConformance, ConnectorHarness

__all__ = ["ConnectorConformance", "ConnectorHarness"]
