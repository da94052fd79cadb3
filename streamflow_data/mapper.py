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
  invalidating the target invalidates the link;
* the parent directories registered for a replica are *implicit* until registered
  themselves: a path inside a registered (explicit) directory replica is answered by
  that replica, a path inside an implicit one is not;
* an invalidated path inside an explicit directory replica is a *hole* of its location
  until that path, or a directory around it below the replica, is registered again;
* the replicas answered for such inner paths are *derived*: kept while valid, so that an
  invalidation reaches them, and become the registered replica when their path is
  registered.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from streamflow_data.errors import UnknownPathError
from streamflow_data.model import DataLocation, DataType, ExecutionLocation, normalize_path

__all__ = ["RemotePathMapper"]

# (deployment, location name, directory path): the key of a directory's children.
_DirKey = tuple[str, str, str]
# (deployment, location name): the key of a location's holes.
_LocationKey = tuple[str, str]
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


def _under(path: str, top: str) -> bool:
    """Whether ``path`` is ``top`` or inside it."""
    return path == top or path.startswith(top + "/") or top == "/"


def _inner(top: str, relative: str) -> str:
    """``relative`` (starting with ``/``) below ``top``."""
    return relative if top == "/" else top + relative


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
        self._parents: set[DataLocation] = set()
        """The implicit parent directories."""
        self._implicit_only: set[str] = set()
        """The paths whose replicas are all implicit parents: a query's walk up skips them."""
        self._unanchored: set[str] = set()
        """Directories with no explicit replica at or above them, as found by queries since
        the last explicit registration (which empties it)."""
        self._holes: dict[_LocationKey, dict[str, ExecutionLocation]] = {}
        """Each location's holes: path to the location."""
        self._derived: dict[_DirKey, DataLocation] = {}
        """(deployment, location name, path) to the derived replica answered there."""

    def __len__(self) -> int:
        """The number of valid replicas, parent directories included (counted: O(paths))."""
        return sum(len(entry) if isinstance(entry, list) else 1 for entry in self._by_path.values())

    # -- lookups -------------------------------------------------------------------------

    def _at(self, path: str) -> list[DataLocation] | tuple[DataLocation, ...]:
        entry = self._by_path.get(path)
        if entry is None:
            return ()
        return entry if isinstance(entry, list) else (entry,)

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
        related to one of them, plus ``path``'s place in every explicitly registered
        directory replica holding it (and in their relatives), but where that place was
        invalidated. Replicas still being written are included (see
        :attr:`DataLocation.available`), but not places inside them.
        """
        entries = self._at(path)
        if not entries:
            path = _canonical(path)
            entries = self._at(path)
        if self._sets:
            entries = self._expand(entries)
        inside = self._inside(path)
        if inside:
            seen = {(e.location.deployment, e.location.name, e.path) for e in entries}
            entries = [
                *entries,
                *(
                    d
                    for d in inside
                    if (d.location.deployment, d.location.name, d.path) not in seen
                ),
            ]
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

    def resolve(self, location: ExecutionLocation, path: str) -> DataLocation | None:
        """The valid replica of ``path`` on ``location``, registered or derived (inside a
        registered directory replica there: see :meth:`get`), or None."""
        path = _canonical(path)
        found = self._find(location, path)
        if found is not None:
            return found
        for replica in self._inside(path):
            if replica.path == path and _same_location(replica, location):
                return replica
        return None

    def _inside(self, path: str) -> list[DataLocation] | tuple[()]:
        """The replicas of ``path`` inside the explicit directory replicas around it (on
        every query: the walk up allocates nothing but the directories' names)."""
        end = path.rfind("/")
        parent = path[:end] or "/"
        if parent in self._unanchored:
            return ()
        found: dict[_DirKey, DataLocation] | None = None
        by_path, implicit_only = self._by_path, self._implicit_only
        while end >= 0:
            top = path[:end] or "/"
            if top not in implicit_only and top in by_path:
                found = {} if found is None else found
                self._derive(path, top, found)
            end = path.rfind("/", 0, end) if end else -1
        if found is None:
            self._unanchored.add(parent)
            return ()
        return list(found.values())

    def _derive(self, path: str, top: str, found: dict[_DirKey, DataLocation]) -> None:
        """Add to ``found`` the place of ``path`` in each explicit replica at ``top`` and
        in each of their explicit relatives (where it is registered itself, so that
        :meth:`resolve` finds it there too)."""
        relative = path if top == "/" else path[len(top) :]
        parents = self._parents
        explicit = [entry for entry in self._at(top) if entry not in parents]
        if self._sets:
            explicit = [entry for entry in self._expand(explicit) if entry not in parents]
        for directory in explicit:
            location = directory.location
            inner = _inner(directory.path, relative)
            key = (location.deployment, location.name, inner)
            if key in found or not directory.available:
                continue
            if self._in_hole(location, directory.path, inner):
                continue
            replica = self._find(location, inner) or self._derived.get(key)
            if replica is None:
                replica = self._derived[key] = DataLocation(
                    location, inner, None, directory.data_type
                )
            found[key] = replica

    def _in_hole(self, location: ExecutionLocation, top: str, path: str) -> bool:
        """Whether ``path`` (inside ``top``) or a directory between them is a hole."""
        holes = self._holes.get((location.deployment, location.name))
        if not holes:
            return False
        while len(path) > len(top):
            if path in holes:
                return True
            path = path[: path.rindex("/")] or "/"
        return False

    def derived(self, replica: DataLocation) -> bool:
        """Whether ``replica`` is one answered inside a registered directory, not itself
        registered (registering it keeps the object)."""
        location, path = replica.location, replica.path
        return self.find(location, path) is None and self.resolve(location, path) is replica

    def implicit(self, replica: DataLocation) -> bool:
        """Whether ``replica`` is a parent directory registered only for what it holds."""
        return replica in self._parents

    def holes(self) -> Iterator[tuple[ExecutionLocation, str]]:
        """Each invalidated path inside an explicit directory replica, with its location."""
        for holes in self._holes.values():
            for path, location in holes.items():
                yield location, path

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
        existing replica (now explicit, if it was an implicit parent). Registering INVALID
        invalidates, as :meth:`invalidate` does. The path's holes on ``location`` and the
        holes below it are filled; a derived replica of it there becomes the registered one.
        """
        path = _canonical(path)
        by_path = self._by_path
        if (
            available
            and path not in by_path
            and data_type is not _INVALID
            and not self._holes
            and not self._derived
        ):
            # The hot path, a path seen nowhere yet: one allocation, two dictionary writes.
            replica = DataLocation(location, path, relpath, data_type)
            by_path[path] = replica
            if self._unanchored:
                self._unanchored.clear()
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
        self._fill_holes(location, path)
        if existing is not None:
            if existing.data_type is data_type and existing.available == available:
                self._parents.discard(existing)
                self._implicit_only.discard(path)
                self._unanchored.clear()
                return existing
            self._retire(existing)
            self._invalidate_links(existing, [])
        derived = self._derived.pop((location.deployment, location.name, path), None)
        if derived is not None and derived.valid and available:
            replica = derived
            replica.relpath = path if relpath is None else relpath
            replica.data_type = data_type
        else:
            replica = DataLocation(location, path, relpath, data_type, available=available)
        self._insert(replica)
        self._implicit_only.discard(path)
        self._unanchored.clear()
        if existing is None:  # a replaced replica is already among its parent's children
            self._link_parents(location, path)
        return replica

    def _insert(self, replica: DataLocation) -> None:
        current = self._by_path.get(replica.path)
        if current is None:
            self._by_path[replica.path] = replica
        elif isinstance(current, list):
            current.append(replica)
        else:
            self._by_path[replica.path] = [current, replica]

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
            self._insert_parent(DataLocation(location, parent))
            path = parent

    def register_parent(self, location: ExecutionLocation, path: str) -> None:
        """Register ``path`` on ``location`` as an implicit parent directory, as registering
        a path inside it does (for a catalog rebuilding the graph); nothing if registered."""
        path = _canonical(path)
        if self._find(location, path) is None:
            self._insert_parent(DataLocation(location, path))
            self._link_parents(location, path)

    def _insert_parent(self, replica: DataLocation) -> None:
        self._insert(replica)
        self._parents.add(replica)
        self._recheck(replica.path)

    def _recheck(self, path: str) -> None:
        """Whether ``path``'s replicas are all implicit parents, after a change there."""
        entries = self._at(path)
        if entries and all(entry in self._parents for entry in entries):
            self._implicit_only.add(path)
        else:
            self._implicit_only.discard(path)

    def _fill_holes(self, location: ExecutionLocation, path: str) -> None:
        """Forget ``location``'s holes at ``path`` and below: it is registered again."""
        key = (location.deployment, location.name)
        holes = self._holes.get(key)
        if holes:
            for hole in [hole for hole in holes if _under(hole, path)]:
                del holes[hole]
            if not holes:
                del self._holes[key]

    def register_relation(self, first: DataLocation, second: DataLocation) -> None:
        """Record that two replicas hold the same data (symmetric and transitive)."""
        first, second = self._registered(first), self._registered(second)
        if first is second:
            return
        self._note_link(first, second)
        self._note_link(second, first)
        first_set = self._sets.get(first)
        second_set = self._sets.get(second)
        if first_set is None:
            if second_set is None:
                self._sets[first] = self._sets[second] = [first, second]
            else:
                self._join(second_set, [first])
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

        Links pointing at an invalidated replica are invalidated too. Inside an explicit
        directory replica of ``location``, the path becomes a hole: its derived replicas
        there become INVALID, and it is answered there no more. Elsewhere an unknown path
        is a no-op. Returns the replicas that became INVALID (for a hole where none had been
        answered yet, a new INVALID one).
        """
        path = _canonical(path)
        invalidated = self._invalidate_registered(location, path)
        if self._explicit_above(location, path):
            self._holes.setdefault((location.deployment, location.name), {})[path] = location
            invalidated.extend(self._drop_derived(location, path))
            if not invalidated:  # none answered there yet: the path's, as it is now
                invalidated.append(DataLocation(location, path, None, _INVALID))
        return invalidated

    def _explicit_above(self, location: ExecutionLocation, path: str) -> bool:
        """Whether an explicit replica of ``location`` holds ``path`` (strictly)."""
        while path != "/":
            path = path[: path.rindex("/")] or "/"
            replica = self._find(location, path)
            if replica is not None and replica not in self._parents:
                return True
        return False

    def _drop_derived(self, location: ExecutionLocation, path: str) -> list[DataLocation]:
        """Invalidate the derived replicas of ``location`` at ``path`` and below."""
        if not self._derived:
            return []
        deployment, name = location.deployment, location.name
        dropped = [
            key
            for key in self._derived
            if key[0] == deployment and key[1] == name and _under(key[2], path)
        ]
        replicas = [self._derived.pop(key) for key in dropped]
        for replica in replicas:
            replica.data_type = _INVALID
            replica.mark_available()
        return replicas

    def _invalidate_registered(self, location: ExecutionLocation, path: str) -> list[DataLocation]:
        """Invalidate the registered replica at ``path`` and its subtree (see invalidate)."""
        root = self._find(location, path)
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
        """Take a replica out of the index and its set, mark it INVALID, wake its waiters;
        so are the replicas derived inside it."""
        self._parents.discard(replica)
        self._drop_derived(replica.location, replica.path)
        entries = self._by_path[replica.path]
        if isinstance(entries, list):
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
        replica.mark_available()
        self._recheck(replica.path)
