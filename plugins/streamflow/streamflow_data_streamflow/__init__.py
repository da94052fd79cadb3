"""streamflow-data-streamflow: StreamFlow's data manager on streamflow-data.

Installed beside StreamFlow, it adds the DataManager type ``streamflow-data``; one line of
a ``streamflow.yml`` selects it (``dataManager: {type: streamflow-data}``). See
``docs/streamflow.md``.
"""

from streamflow_data_streamflow.deployments import ssh_options
from streamflow_data_streamflow.manager import StreamFlowDataManager
from streamflow_data_streamflow.options import DataManagerOptions
from streamflow_data_streamflow.plugin import DATA_MANAGER_TYPE, StreamFlowDataPlugin
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
