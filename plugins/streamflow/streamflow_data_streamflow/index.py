"""StreamFlow's own view of the replicas: its ``DataLocation`` objects, found as its
``DefaultDataManager`` finds them.

StreamFlow's workflow code reads more than where data is: a replica's ``relpath`` (it
cuts ``path`` by it), which parents a registration made known and with which relpath,
that a path below a registered directory is *not* answered until registered, and the
order of answers (it takes the first). This index keeps those answers, so a workflow
behaves the same on either data manager; the bytes are this project's engine's.

A node per path holds, per deployment and location (in the order they came), the
replicas filed there, which a relation may have filed under the path of their relative.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterator
from pathlib import PurePosixPath
from typing import Any

from streamflow.core.data import DataLocation, DataType

__all__ = ["ReplicaIndex"]


class _Node:
    __slots__ = ("children", "paths", "replicas")

    def __init__(self) -> None:
        self.children: dict[str, _Node] = {}
        self.replicas: dict[str, dict[str, list[DataLocation]]] = {}
        """Deployment, then location name, to the replicas filed here."""
        self.paths: dict[tuple[str, str], set[str]] = {}
        """Deployment and location name to the paths of the valid replicas filed here."""

    def filed(self, replica: DataLocation) -> bool:
        return replica.path in self.paths.get((replica.deployment, replica.name), ())

    def file(self, replica: DataLocation) -> None:
        by_name = self.replicas.setdefault(replica.deployment, {})
        by_name.setdefault(replica.name, []).append(replica)
        self.paths.setdefault((replica.deployment, replica.name), set()).add(replica.path)

    def at(self, deployment: str, name: str) -> list[DataLocation]:
        return self.replicas.get(deployment, {}).get(name, [])


class ReplicaIndex:
    """The replicas StreamFlow registered, as StreamFlow's own data manager files them."""

    def __init__(self) -> None:
        self._root = _Node()

    def _node(self, path: str) -> _Node | None:
        """The node of ``path``, if anything was filed at or below it."""
        node = self._root
        for part in PurePosixPath(path).parts:
            child = node.children.get(part)
            if child is None:
                return None
            node = child
        return node

    def get(
        self,
        path: str,
        deployment: str | None = None,
        name: str | None = None,
        data_type: DataType | None = None,
    ) -> list[DataLocation]:
        """The replicas filed at ``path`` (INVALID ones too), narrowed by the filters."""
        node = self._node(path)
        if node is None:
            return []
        found: list[DataLocation] = []
        for dep in [deployment] if deployment is not None else list(node.replicas):
            names = [name] if name is not None else list(node.replicas.get(dep, {}))
            for each in names:
                found.extend(
                    replica
                    for replica in node.at(dep, each)
                    if data_type is None or replica.data_type == data_type
                )
        return found

    def put(self, path: str, replica: DataLocation, parents: bool = False) -> None:
        """File ``replica`` at ``path``; with ``parents``, a PRIMARY replica of each parent
        directory too, on the same location, up to the first already filed there.

        A parent's relpath is what remains of the replica's relpath at that depth, while
        the parent's path still ends with it, else the parent's own name.
        """
        chain = list(self._chain(path))
        if not parents:  # the replica itself, at the node of ``path`` (the root for "")
            chain = [(path, chain[-1][1] if chain else self._root)]
        relpath = replica.relpath
        for node_path, node in reversed(chain):
            if node_path == path:
                filed = replica
            else:
                filed = DataLocation(
                    location=replica.location,
                    path=node_path,
                    relpath=(
                        relpath
                        if relpath and node_path.endswith(relpath)
                        else posixpath.basename(node_path)
                    ),
                    data_type=DataType.PRIMARY,
                    available=True,
                )
            if node.filed(filed):
                return
            node.file(filed)
            relpath = posixpath.dirname(relpath)

    def _chain(self, path: str) -> Iterator[tuple[str, _Node]]:
        """Each directory from the root down to ``path``, with its node (made if missing)."""
        node, parts = self._root, PurePosixPath(path).parts
        for depth, part in enumerate(parts, start=1):
            node = node.children.setdefault(part, _Node())
            yield posixpath.join(*parts[:depth]), node

    def relate(self, source: DataLocation, destination: DataLocation) -> None:
        """File ``destination`` with every replica at ``source``'s path, and each of them
        at ``destination``'s path."""
        for replica in self.get(source.path):
            self.put(replica.path, destination)
            self.put(destination.path, replica)

    def invalidate(self, location: Any, path: str) -> None:
        """Mark INVALID the replicas of ``location`` filed at ``path``, and, below it, each
        valid replica of that location with what is filed at its own path. Unknown paths
        are ignored (StreamFlow's manager raises ``KeyError``)."""
        node = self._node(path)
        if node is None:
            return
        key = (location.deployment, location.name)
        for replica in node.at(*key):
            replica.data_type = DataType.INVALID
            node.paths.get(key, set()).discard(replica.path)
        for child in list(node.children.values()):
            for replica in list(child.at(*key)):
                if replica.data_type != DataType.INVALID:
                    self.invalidate(replica.location, replica.path)
