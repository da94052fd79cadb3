"""Changes of the replica graph as values: what a data manager tells its observers (a
service's subscribers, a remote client's mirror), and how a graph is rebuilt from them."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from streamflow_data.location import ExecutionLocation
from streamflow_data.mapper import RemotePathMapper
from streamflow_data.model import DataLocation, DataType

__all__ = [
    "Detached",
    "GraphChange",
    "GraphObserver",
    "Invalidated",
    "Registered",
    "Related",
    "apply_change",
    "snapshot",
]


@dataclass(frozen=True, slots=True)
class Registered:
    """A replica was registered (``implicit``: a parent directory registered only for what
    it holds, in a snapshot)."""

    location: ExecutionLocation
    path: str
    relpath: str
    data_type: DataType
    implicit: bool = False

    @classmethod
    def of(cls, replica: DataLocation, implicit: bool = False) -> Registered:
        """The registration of ``replica`` as it is now."""
        return cls(replica.location, replica.path, replica.relpath, replica.data_type, implicit)


@dataclass(frozen=True, slots=True)
class Related:
    """Two replicas were related: they hold the same data."""

    location: ExecutionLocation
    path: str
    other_location: ExecutionLocation
    other_path: str

    @classmethod
    def of(cls, first: DataLocation, second: DataLocation) -> Related:
        """The relation of two replicas."""
        return cls(first.location, first.path, second.location, second.path)


@dataclass(frozen=True, slots=True)
class Invalidated:
    """``path`` and its subtree on ``location`` were invalidated."""

    location: ExecutionLocation
    path: str


@dataclass(frozen=True, slots=True)
class Detached:
    """The replica at ``path`` on ``location`` left its replica set."""

    location: ExecutionLocation
    path: str


GraphChange = Registered | Related | Invalidated | Detached
"""One change of a replica graph."""

GraphObserver = Callable[[GraphChange], None]
"""A callable told each change of a data manager's graph as it is made; it must not block."""


def apply_change(mapper: RemotePathMapper, change: GraphChange) -> None:
    """Make ``change`` in ``mapper``, as the data manager that reported it made it (a
    relation of replicas ``mapper`` does not hold is ignored)."""
    if isinstance(change, Registered):
        if change.implicit:
            mapper.register_parent(change.location, change.path)
        else:
            relpath = None if change.relpath == change.path else change.relpath
            mapper.register(change.location, change.path, relpath, change.data_type)
    elif isinstance(change, Related):
        first = mapper.find(change.location, change.path)
        second = mapper.find(change.other_location, change.other_path)
        if first is not None and second is not None:
            mapper.register_relation(first, second)
    elif isinstance(change, Invalidated):
        mapper.invalidate(change.location, change.path)
    elif (replica := mapper.find(change.location, change.path)) is not None:
        mapper.detach(replica)


def snapshot(mapper: RemotePathMapper) -> Iterator[GraphChange]:
    """The changes that rebuild ``mapper`` as it is, through :func:`apply_change`: every
    replica (implicit parents as such) and every hole, parents before children, holes
    before the replicas at their path, replicas in query order at each path; then each
    replica set, in order; then the links' targets."""
    items: list[tuple[str, int, GraphChange]] = [
        (path, 0, Invalidated(location, path)) for location, path in mapper.holes()
    ]
    items.extend(
        (replica.path, 1, Registered.of(replica, mapper.implicit(replica)))
        for replica in mapper.replicas()
    )
    items.sort(key=lambda item: item[:2])  # stable: query order at each path
    for _, _, change in items:
        yield change
    for replica_set in mapper.replica_sets():
        for member in replica_set[1:]:
            yield Related.of(replica_set[0], member)
    for target, link in mapper.link_targets():
        yield Related.of(target, link)
