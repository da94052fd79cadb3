"""Where the data manager reports each change of its replica graph: the catalog's log and
the observers an embedder adds (a service's subscribers)."""

from __future__ import annotations

from streamflow_data.catalog.replicas import ReplicaLog
from streamflow_data.changes import (
    Detached,
    GraphChange,
    GraphObserver,
    Invalidated,
    Registered,
    Related,
)
from streamflow_data.model import DataLocation, ExecutionLocation

__all__ = ["ChangeFeed"]


class ChangeFeed:
    """Tells the catalog's replica log (once open) and every observer each change."""

    def __init__(self) -> None:
        self.log: ReplicaLog | None = None
        self.observers: list[GraphObserver] = []

    def registered(self, replica: DataLocation) -> None:
        if self.log is not None:
            self.log.registered(replica)
        for observer in self.observers:
            observer(Registered.of(replica))

    def related(self, first: DataLocation, second: DataLocation) -> None:
        if self.log is not None:
            self.log.related(first, second)
        for observer in self.observers:
            observer(Related.of(first, second))

    def invalidated(self, location: ExecutionLocation, path: str) -> None:
        if self.log is not None:
            self.log.invalidated(location, path)
        for observer in self.observers:
            observer(Invalidated(location, path))

    def tell(self, change: GraphChange) -> None:
        """Tell the observers a change the catalog brought (another manager's)."""
        for observer in self.observers:
            observer(change)

    def detached(self, replica: DataLocation) -> None:
        if self.log is not None:
            self.log.detached(replica)
        for observer in self.observers:
            observer(Detached(replica.location, replica.path))
