"""streamflow-data-streamflow: StreamFlow's data manager on streamflow-data.

Installed beside StreamFlow, it adds the DataManager type ``streamflow-data``; one line of
a ``streamflow.yml`` selects it (``dataManager: {type: streamflow-data}``). See
``docs/streamflow.md``.

StreamFlow imports every installed plugin at each start, whichever data manager the run
uses: importing this package imports none of the engine. The names that need it are
imported on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from streamflow_data_streamflow.manager import StreamFlowDataManager
from streamflow_data_streamflow.plugin import DATA_MANAGER_TYPE, StreamFlowDataPlugin

if TYPE_CHECKING:
    from streamflow_data_streamflow.deployments import ssh_options
    from streamflow_data_streamflow.options import DataManagerOptions
    from streamflow_data_streamflow.transport import CommandsConnector, CommandsTransport

__all__ = [
    "DATA_MANAGER_TYPE",
    "CommandsConnector",
    "CommandsTransport",
    "DataManagerOptions",
    "StreamFlowDataManager",
    "StreamFlowDataPlugin",
    "ssh_options",
]

_ON_FIRST_USE = {
    "CommandsConnector": "transport",
    "CommandsTransport": "transport",
    "DataManagerOptions": "options",
    "ssh_options": "deployments",
}
"""The exported names imported on first use, and their modules."""


def __getattr__(name: str) -> Any:
    module = _ON_FIRST_USE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
