"""The StreamFlow plugin: registers the ``streamflow-data`` DataManager type."""

from __future__ import annotations

from streamflow.ext.plugin import StreamFlowPlugin

from streamflow_data_streamflow.manager import StreamFlowDataManager

__all__ = ["DATA_MANAGER_TYPE", "StreamFlowDataPlugin"]

DATA_MANAGER_TYPE = "streamflow-data"
"""What ``dataManager.type`` names in a ``streamflow.yml``."""


class StreamFlowDataPlugin(StreamFlowPlugin):  # type: ignore[misc]  # StreamFlow is untyped
    """Found by StreamFlow through the entry point group ``unito.streamflow.plugin``."""

    def register(self) -> None:
        self.register_data_manager(DATA_MANAGER_TYPE, StreamFlowDataManager)
