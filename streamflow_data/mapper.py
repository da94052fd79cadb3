"""The replica graph: which location holds which path, and which replicas hold the same data.

Invariants the code below keeps:

* the index holds only valid replicas; invalidating one removes it (and marks the object
  INVALID so holders see it);
* a replica's parent directories are registered on its location, and every replica is
  listed once among its parent's children, so a subtree is found without scanning the
  index; a directory has a children list only while it is registered on that location;
* replicas related by :meth:`RemotePathMapper.register_relation` share one replica set
  (a list shared by its members); sets merge smaller-into-larger, so relating n replicas
  costs O(n log n) overall;
* a SYMBOLIC_LINK replica related to a PRIMARY replica on its own location points at it:
  invalidating the target invalidates the link.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from streamflow_data.errors import UnknownPathError
from streamflow_data.model import DataLocation, DataType, ExecutionLocation, normalize_path

__all__ = ["RemotePathMapper"]

# (deployment, location name, directory path): the key of a directory's children.
_DirKey = tuple[str, str, str]
_INVALID = DataType.INVALID


def _canonical(path: str) -> str:
    """Normalize only when the path may need it: the common canonical case costs a few
    scans, no allocation."""
    if (
        "//" in path
        or "/." in path
        or path[-1:] == "/"
        or path[:1] != "/"
        or "\0" in path
        or not path.isascii()
    ):
        return normalize_path(path)
    return path


def _parent(path: str) -> str:
    return path[: path.rindex("/")] or "/"


def _same_location(entry: DataLocation, location: ExecutionLocation) -> bool:
    held = entry.location
    return held is location or (
        held.name == location.name and held.deployment == location.deployment
    )


class RemotePathMapper:
    """Where every replica of every path lives.

    Registering and querying cost O(path depth) and allocate one :class:`DataLocation` per
    new replica; directories keep a child index so that invalidating a subtree visits only
    that subtree.
    """

    def __init__(self) -> None:
        # path -> the replica at that path (one location) or a list of them (several).
        self._by_path: dict[str, DataLocation | list[DataLocation]] = {}
        self._children: dict[_DirKey, list[str]] = {}
        self._sets: dict[DataLocation, list[DataLocation]] = {}
        self._link_target: dict[DataLocation, DataLocation] = {}
        self._links_to: dict[DataLocation, list[DataLocation]] = {}

    def __len__(self) -> int:
        """The number of valid replicas, parent directories included (counted: O(paths))."""
        return sum(len(entry) if type(entry) is list else 1 for entry in self._by_path.values())

    # -- lookups -------------------------------------------------------------------------

    def _at(self, path: str) -> list[DataLocation] | tuple[DataLocation, ...]:
        entry = self._by_path.get(path)
        if entry is None:
            return ()
        return entry if type(entry) is list else (entry,)  # type: ignore[return-value]

    def find(self, location: ExecutionLocation, path: str) -> DataLocation | None:
        """The valid replica of ``path`` on ``location``, or None."""
        return self._find(location, _canonical(path))

    def _find(self, location: ExecutionLocation, path: str) -> DataLocation | None:
        for entry in self._at(path):
            if _same_location(entry, location):
                return entry
        return None

    def get(
        self,
        path: str,
        deployment: str | None = None,
        location_name: str | None = None,
        data_type: DataType | None = None,
    ) -> list[DataLocation]:
        """Every valid replica of the data registered at ``path``, narrowed by the filters.

        That is each replica registered at ``path`` on any location, plus every replica
        related to one of them. Replicas still being written are included (see
        :attr:`DataLocation.available`).
        """
        entries = self._at(path)
        if not entries:
            entries = self._at(_canonical(path))
        if self._sets:
            entries = self._expand(entries)
        return [
            entry
            for entry in entries
            if (deployment is None or entry.location.deployment == deployment)
            and (location_name is None or entry.location.name == location_name)
            and (data_type is None or entry.data_type is data_type)
        ]

    def _expand(
        self, entries: list[DataLocation] | tuple[DataLocation, ...]
    ) -> list[DataLocation] | tuple[DataLocation, ...]:
        related = [self._sets[entry] for entry in entries if entry in self._sets]
        if not related:
            return entries
        unique = dict.fromkeys(entries)
        for replica_set in related:
            unique.update(dict.fromkeys(replica_set))
        return list(unique)

    def replicas(self) -> Iterator[DataLocation]:
        """Every valid replica, parent directories included, in no particular order."""
        for entry in self._by_path.values():
            if isinstance(entry, list):
                yield from entry
            else:
                yield entry

    def replica_sets(self) -> Iterator[list[DataLocation]]:
        """Each group of replicas related to one another (two members at least)."""
        seen: set[int] = set()
        for replica_set in self._sets.values():
            if id(replica_set) not in seen:
                seen.add(id(replica_set))
                yield list(replica_set)

    def link_targets(self) -> Iterator[tuple[DataLocation, DataLocation]]:
        """(target, link) for every SYMBOLIC_LINK replica that points at a PRIMARY one."""
        for link, target in self._link_target.items():
            yield target, link

    # -- registration --------------------------------------------------------------------

    def register(
        self,
        location: ExecutionLocation,
        path: str,
        relpath: str | None = None,
        data_type: DataType = DataType.PRIMARY,
        *,
        available: bool = True,
    ) -> DataLocation:
        """Register a replica of ``path`` on ``location`` and its parent directories.

        Registering again what is already registered, with the same data type, returns the
        existing replica. Registering INVALID invalidates, as :meth:`invalidate` does.
        """
        path = _canonical(path)
        by_path = self._by_path
        if available and path not in by_path and data_type is not _INVALID:
            # The hot path, a path seen nowhere yet: one allocation, two dictionary writes.
            replica = DataLocation(location, path, relpath, data_type)
            by_path[path] = replica
            parent = path[: path.rindex("/")] or "/"
            children = self._children.get((location.deployment, location.name, parent))
            if children is None:
                self._link_parents(location, path)
            else:
                children.append(path)
            return replica
        existing = self._find(location, path)
        if data_type is _INVALID:
            self.invalidate(location, path)
            return existing or DataLocation(location, path, relpath, _INVALID)
        if existing is not None:
            if existing.data_type is data_type and existing.available == available:
                return existing
            self._retire(existing)
            self._invalidate_links(existing, [])
        replica = DataLocation(location, path, relpath, data_type, available=available)
        self._insert(replica)
        if existing is None:  # a replaced replica is already among its parent's children
            self._link_parents(location, path)
        return replica

    def _insert(self, replica: DataLocation) -> None:
        current = self._by_path.get(replica.path)
        if current is None:
            self._by_path[replica.path] = replica
        elif type(current) is list:
            current.append(replica)
        else:
            self._by_path[replica.path] = [current, replica]  # type: ignore[list-item]

    def _link_parents(self, location: ExecutionLocation, path: str) -> None:
        """List ``path`` among its parent's children, registering missing parents.

        A directory has a children entry only while it is registered on that location, so
        finding one ends the walk up.
        """
        deployment, name = location.deployment, location.name
        all_children = self._children
        while path != "/":
            parent = _parent(path)
            key = (deployment, name, parent)
            children = all_children.get(key)
            if children is not None:
                children.append(path)
                return
            all_children[key] = [path]
            if self._find(location, parent) is not None:
                return
            self._insert(DataLocation(location, parent))
            path = parent

    def register_relation(self, first: DataLocation, second: DataLocation) -> None:
        """Record that two replicas hold the same data (symmetric and transitive)."""
        first, second = self._registered(first), self._registered(second)
        if first is second:
            return
        self._note_link(first, second)
        self._note_link(second, first)
        first_set = self._sets.get(first)
        second_set = self._sets.get(second)
        if first_set is None and second_set is None:
            self._sets[first] = self._sets[second] = [first, second]
        elif first_set is None:
            self._join(second_set, [first])  # type: ignore[arg-type]
        elif second_set is None:
            self._join(first_set, [second])
        elif first_set is not second_set:
            small, large = sorted((first_set, second_set), key=len)
            self._join(large, small)

    def _join(self, target: list[DataLocation], members: Iterable[DataLocation]) -> None:
        for member in members:
            target.append(member)
            self._sets[member] = target

    def _note_link(self, link: DataLocation, target: DataLocation) -> None:
        if (
            link.data_type is DataType.SYMBOLIC_LINK
            and target.data_type is DataType.PRIMARY
            and _same_location(link, target.location)
            and link not in self._link_target
        ):
            self._link_target[link] = target
            self._links_to.setdefault(target, []).append(link)

    def _registered(self, replica: DataLocation) -> DataLocation:
        if replica.valid:
            for entry in self._at(replica.path):
                if entry is replica:
                    return entry
            found = self.find(replica.location, replica.path)
            if found is not None:
                return found
        raise UnknownPathError(replica.path, replica.location)

    def detach(self, replica: DataLocation) -> None:
        """Remove a replica from its replica set: its data may now diverge."""
        replica_set = self._sets.pop(replica, None)
        if replica_set is None:
            return
        replica_set.remove(replica)
        if len(replica_set) == 1:
            del self._sets[replica_set[0]]

    # -- invalidation --------------------------------------------------------------------

    def invalidate(self, location: ExecutionLocation, path: str) -> list[DataLocation]:
        """Invalidate the replica at ``path`` on ``location`` and every replica below it.

        Links pointing at an invalidated replica are invalidated too. An unknown path is a
        no-op. Returns the replicas that became INVALID.
        """
        root = self.find(location, path)
        if root is None:
            return []
        if root.path != "/":
            # The parent's list is gone when the parent itself is being invalidated: a
            # link inside the subtree can be reached through its target first.
            siblings = self._children.get((location.deployment, location.name, _parent(root.path)))
            if siblings is not None:
                siblings.remove(root.path)
        invalidated: list[DataLocation] = []
        pending = [root]
        while pending:
            replica = pending.pop()
            if not replica.valid:
                continue
            invalidated.append(replica)
            self._retire(replica)
            key = (replica.location.deployment, replica.location.name, replica.path)
            for child_path in self._children.pop(key, ()):
                child = self._find(replica.location, child_path)
                if child is not None:
                    pending.append(child)
            self._invalidate_links(replica, invalidated)
        return invalidated

    def _invalidate_links(self, target: DataLocation, invalidated: list[DataLocation]) -> None:
        for link in self._links_to.pop(target, ()):
            if link.valid:
                invalidated.extend(self.invalidate(link.location, link.path))

    def _retire(self, replica: DataLocation) -> None:
        """Take a replica out of the index and its set, mark it INVALID, wake its waiters."""
        entries = self._by_path[replica.path]
        if type(entries) is list:
            entries.remove(replica)
            if len(entries) == 1:
                self._by_path[replica.path] = entries[0]
        else:
            del self._by_path[replica.path]
        self.detach(replica)
        target = self._link_target.pop(replica, None)
        if target is not None:
            links = self._links_to.get(target)
            if links is not None:
                links.remove(replica)
        replica.data_type = DataType.INVALID
        replica._set_available()
