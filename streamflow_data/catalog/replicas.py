"""The replica graph on disk: a log of the changes made to it, replayed on open.

Each registration, relation, invalidation and detachment is appended to ``replica_log``
as it happens; opening the catalog replays the log into a fresh
:class:`~streamflow_data.mapper.RemotePathMapper`, through the same methods and in the
same order as the original, so the graph comes back exactly as it was: relations, link
targets, subtree invalidations, and the order of replicas that queries return. When the
log has grown to more than twice what the graph holds, it is rewritten as a snapshot of
the graph: implicit parent directories as such (they are not data registered for what
they hold) and the holes invalidated inside explicit directories. Rows another process
appended since the replay are kept, after the snapshot.

Plain registrations (PRIMARY, no relpath), the bulk of the log, are queued as the replica
objects themselves (one append) and written as *runs*: one row per run of consecutive
plain registrations, holding their paths (``names``, NUL-separated), the locations of the
run (``relpath``, separated by U+001E) and which location each path is on
(``other_location``, one byte each). SQLite then takes a row per thousands of
registrations instead of one each.

Every row names the catalog opening that wrote it (``origin``), so that managers sharing
the catalog read each other's rows and not their own (:meth:`ReplicaLog.since`).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from typing import Protocol

from streamflow_data.catalog.database import Database, Row
from streamflow_data.changes import (
    Detached,
    GraphChange,
    Invalidated,
    Registered,
    Related,
    apply_change,
    snapshot,
)
from streamflow_data.mapper import RemotePathMapper
from streamflow_data.model import DataLocation, DataType, ExecutionLocation

__all__ = ["ReplicaLog", "location_key"]

# Operation codes of the log.
_PRIMARY = 1
_LINK = 2
_RELATE = 3
_INVALIDATE = 4
_DETACH = 5
_RUN = 6  # a run of plain registrations, see the module docstring
_PARENT = 7  # an implicit parent directory, in a snapshot

_SHORT = "INSERT INTO replica_log (op, location, path, origin) VALUES (?, ?, ?, ?)"
_REPLICA = (
    "INSERT INTO replica_log (op, location, path, relpath, other_location, names, origin) "
    "VALUES (?, ?, ?, ?, ?, ?, ?)"
)
_RELATION = (
    "INSERT INTO replica_log (op, location, path, other_location, other_path, origin) "
    "VALUES (?, ?, ?, ?, ?, ?)"
)
_AT = (
    "INSERT INTO replica_log (seq, op, location, path, relpath, other_location, names, "
    "other_path, origin) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_READ = (
    "SELECT seq, op, location, path, relpath, other_location, other_path, names, origin "
    "FROM replica_log WHERE seq > ? AND seq <= ? ORDER BY seq"
)
_LOCATION = (
    "INSERT INTO locations (key, deployment, name, local, hostname) "
    "VALUES (?, ?, ?, ?, ?) ON CONFLICT (key) DO NOTHING"
)
_RUN_LOCATIONS = 255  # a run's location numbers are single bytes
_RUN_PATHS = 10_000  # rows stay small enough to read back a few at a time


class _RegistrationRun:
    """Consecutive plain registrations, in order, becoming one row."""

    def __init__(self, keys: dict[int, tuple[ExecutionLocation, str]]) -> None:
        self._keys = keys
        self.paths: list[str] = []
        self._numbers: dict[int, int] = {}  # id(location) -> its number in the run
        self._on = bytearray()

    def add(self, location: ExecutionLocation, path: str) -> bool:
        """Add a registration; False (and nothing added) when the run is full."""
        if len(self.paths) == _RUN_PATHS:
            return False
        number = self._numbers.get(id(location))
        if number is None:
            if len(self._numbers) == _RUN_LOCATIONS:
                return False
            number = self._numbers[id(location)] = len(self._numbers)
        self.paths.append(path)
        self._on.append(number)
        return True

    def rows(self) -> Iterator[Row]:
        """The run's row (none for an empty run), in :data:`_REPLICA` order."""
        if not self.paths:
            return
        keys = [self._keys[location][1] for location in self._numbers]
        if len(self.paths) == 1:
            yield (_PRIMARY, keys[0], self.paths[0], None, None, None)
            return
        yield (_RUN, keys[0], "", "\x1e".join(keys), bytes(self._on), _bytes("\0".join(self.paths)))


def _bytes(text: str) -> bytes:
    """Text for the log's byte columns (``other_location``, ``names``): PostgreSQL's text
    cannot hold the NUL that separates a run's paths."""
    return text.encode("utf-8", "surrogateescape")


def _text(value: str | bytes) -> str:
    """A byte column's text (older catalog files hold text there: both are read)."""
    return value if isinstance(value, str) else value.decode("utf-8", "surrogateescape")


class _Sink(Protocol):
    """What the log's rows are decoded into."""

    def register(
        self, location: ExecutionLocation, path: str, relpath: str | None, data_type: DataType
    ) -> object: ...

    def register_parent(self, location: ExecutionLocation, path: str) -> object: ...

    def invalidate(self, location: ExecutionLocation, path: str) -> object: ...

    def relate(
        self, location: ExecutionLocation, path: str, other: ExecutionLocation, other_path: str
    ) -> None: ...

    def detach(self, location: ExecutionLocation, path: str) -> None: ...


class _Replay:
    """Rows replayed into a graph, through the methods that built it (registrations, the
    bulk, straight to the graph's own method)."""

    def __init__(self, mapper: RemotePathMapper) -> None:
        self.count = 0
        """Registrations replayed."""
        self._mapper = mapper
        register = mapper.register

        def counted(
            location: ExecutionLocation, path: str, relpath: str | None, data_type: DataType
        ) -> DataLocation:
            self.count += 1
            return register(location, path, relpath, data_type)

        self.register = counted
        self.register_parent = mapper.register_parent
        self.invalidate = mapper.invalidate

    def relate(
        self, location: ExecutionLocation, path: str, other: ExecutionLocation, other_path: str
    ) -> None:
        apply_change(self._mapper, Related(location, path, other, other_path))

    def detach(self, location: ExecutionLocation, path: str) -> None:
        apply_change(self._mapper, Detached(location, path))


class _Changes:
    """Rows decoded into changes, for a graph that already holds the earlier ones."""

    def __init__(self) -> None:
        self.found: list[GraphChange] = []

    def register(
        self, location: ExecutionLocation, path: str, relpath: str | None, data_type: DataType
    ) -> None:
        self.found.append(Registered(location, path, relpath or path, data_type))

    def register_parent(self, location: ExecutionLocation, path: str) -> None:
        self.found.append(Registered(location, path, path, DataType.PRIMARY, implicit=True))

    def invalidate(self, location: ExecutionLocation, path: str) -> None:
        self.found.append(Invalidated(location, path))

    def relate(
        self, location: ExecutionLocation, path: str, other: ExecutionLocation, other_path: str
    ) -> None:
        self.found.append(Related(location, path, other, other_path))

    def detach(self, location: ExecutionLocation, path: str) -> None:
        self.found.append(Detached(location, path))


def location_key(location: ExecutionLocation) -> str:
    """How the catalog names a location: what the replica graph indexes it by."""
    return f"{location.deployment}\x1f{location.name}"


class ReplicaLog:
    """Appends the changes of a replica graph to the catalog and replays them."""

    def __init__(self, database: Database) -> None:
        self._database = database
        self._enqueue = database.enqueue
        self.origin = os.urandom(8).hex()
        """What marks the rows this log writes (those of other managers sharing the
        catalog are read back, see :meth:`since`)."""
        self.seen = 0
        """The last row of the log read (replayed, or written here)."""
        database.convert(_REPLICA, self._origin_rows)
        self._locations: dict[str, ExecutionLocation] = {}
        # id(location) -> (location, key): hashing a frozen dataclass costs more than
        # the rest of a registration; holding the location keeps its id unique.
        self._keys: dict[int, tuple[ExecutionLocation, str]] = {}

    def _key(self, location: ExecutionLocation) -> str:
        found = self._keys.get(id(location))
        if found is not None:
            return found[1]
        key = location_key(location)
        self._keys[id(location)] = (location, key)
        self._database.enqueue(
            _LOCATION,
            (key, location.deployment, location.name, int(location.local), location.hostname),
        )
        return key

    # -- recording ----------------------------------------------------------------------------

    def registered(self, replica: DataLocation) -> None:
        """``replica`` was registered (an INVALID one: see :meth:`invalidated`)."""
        data_type = replica.data_type
        if data_type is DataType.INVALID:
            self.invalidated(replica.location, replica.path)
            return
        if id(replica.location) not in self._keys:
            self._key(replica.location)
        if data_type is DataType.PRIMARY and replica.relpath is replica.path:
            self._enqueue(_REPLICA, replica)  # plain: the row is made when written
            return
        op = _PRIMARY if data_type is DataType.PRIMARY else _LINK
        key = self._keys[id(replica.location)][1]
        self._enqueue(_REPLICA, (op, key, replica.path, replica.relpath, None, None))

    def _origin_rows(self, items: Sequence[DataLocation | Registered | Row]) -> Iterator[Row]:
        origin = self.origin
        return ((*row, origin) for row in self._replica_rows(items))

    def _replica_rows(self, items: Sequence[DataLocation | Registered | Row]) -> Iterator[Row]:
        # A queued replica is a plain PRIMARY registration, whatever happened to the
        # object since (its invalidation follows it in the log); other registrations
        # were queued as rows and end the run before them.
        run = _RegistrationRun(self._keys)
        for item in items:
            if type(item) is tuple:
                yield from run.rows()
                run = _RegistrationRun(self._keys)
                yield item
                continue
            replica: DataLocation | Registered = item  # type: ignore[assignment]
            if not run.add(replica.location, replica.path):
                yield from run.rows()
                run = _RegistrationRun(self._keys)
                run.add(replica.location, replica.path)
        yield from run.rows()

    def related(self, first: DataLocation, second: DataLocation) -> None:
        """Two replicas were related."""
        self._database.enqueue(_RELATION, self._relation(first, second))

    def _relation(self, first: DataLocation, second: DataLocation) -> Row:
        key, other = self._key(first.location), self._key(second.location)
        return (_RELATE, key, first.path, _bytes(other), second.path, self.origin)

    def invalidated(self, location: ExecutionLocation, path: str) -> None:
        """``path`` and its subtree on ``location`` were invalidated."""
        self._database.enqueue(_SHORT, (_INVALIDATE, self._key(location), path, self.origin))

    def detached(self, replica: DataLocation) -> None:
        """A replica left its replica set."""
        key = self._key(replica.location)
        self._database.enqueue(_SHORT, (_DETACH, key, replica.path, self.origin))

    # -- replay --------------------------------------------------------------------------------

    async def load(self, mapper: RemotePathMapper) -> None:
        """Replay the log into ``mapper``, then compact the log if it has grown large."""
        last = await self._read_locations()
        replay = _Replay(mapper)
        async for rows in self._database.fetch(_READ, (0, last)):
            self._decode(rows, replay, None)
        self.seen = last
        if replay.count > 2 * len(mapper) + 1000:  # registrations replayed, against replicas
            await self._compact(self._snapshot(mapper), last)

    async def since(self) -> list[GraphChange]:
        """The changes other managers sharing the catalog wrote since the last read, in
        order (the log is written by one writer at a time, so its order is final)."""
        last = await self._read_locations()
        changes = _Changes()
        async for rows in self._database.fetch(_READ, (self.seen, last)):
            self._decode(rows, changes, self.origin)
        self.seen = max(self.seen, last)
        return changes.found

    async def _read_locations(self) -> int:
        """Learn the locations written so far; the log's last row then."""
        [(last,)] = await self._database.fetch_all("SELECT coalesce(max(seq), 0) FROM replica_log")
        for key, deployment, name, local, hostname in await self._database.fetch_all(
            "SELECT key, deployment, name, local, hostname FROM locations"
        ):
            if key not in self._locations:
                location = ExecutionLocation(deployment, name, bool(local), hostname)
                self._locations[key] = location
                self._keys.setdefault(id(location), (location, key))
        return int(last)

    def _decode(self, rows: Sequence[Row], sink: _Sink, skip: str | None) -> None:
        """Give ``sink`` the changes ``rows`` of the log record, but those of ``skip``."""
        locations = self._locations
        register = sink.register
        primary, link = DataType.PRIMARY, DataType.SYMBOLIC_LINK
        for _, op, key, path, relpath, other_key, other_path, names, origin in rows:
            if origin is not None and origin == skip:
                continue
            if op == _RUN:
                on = [locations[run_key] for run_key in relpath.split("\x1e")]
                for number, run_path in zip(other_key, _text(names).split("\0"), strict=True):
                    register(on[number], run_path, None, primary)
            elif op in (_PRIMARY, _LINK):
                register(locations[key], path, relpath, primary if op == _PRIMARY else link)
            elif op == _INVALIDATE:
                sink.invalidate(locations[key], path)
            elif op == _PARENT:
                sink.register_parent(locations[key], path)
            elif op == _RELATE:
                sink.relate(locations[key], path, locations[_text(other_key)], other_path)
            elif op == _DETACH:
                sink.detach(locations[key], path)

    def _snapshot(self, mapper: RemotePathMapper) -> list[Row]:
        """Log rows that rebuild ``mapper`` as it is (see :func:`snapshot`); a relation
        within one set only notes the link."""
        registrations: list[Registered | Row] = []
        relations: list[Row] = []
        for change in snapshot(mapper):
            if isinstance(change, Invalidated):
                key = self._key(change.location)
                registrations.append((_INVALIDATE, key, change.path, None, None, None))
            elif isinstance(change, Related):
                key, other = self._key(change.location), self._key(change.other_location)
                row = (_RELATE, key, change.path, None, _bytes(other), None, change.other_path)
                relations.append(row)
            elif isinstance(change, Registered):
                key = self._key(change.location)
                if change.implicit:
                    registrations.append((_PARENT, key, change.path, None, None, None))
                elif change.data_type is DataType.PRIMARY and change.relpath == change.path:
                    registrations.append(change)
                else:
                    op = _PRIMARY if change.data_type is DataType.PRIMARY else _LINK
                    registrations.append((op, key, change.path, change.relpath, None, None))
        rows = [(*row, None) for row in self._replica_rows(registrations)] + relations
        return [(*row, self.origin) for row in rows]

    async def _compact(self, snapshot: list[Row], last: int) -> None:
        """Replace the log up to ``last`` by ``snapshot``, keeping later rows after it."""
        await self._database.flush()  # locations of the snapshot first
        first = last - len(snapshot) + 1
        async with self._database.transaction() as connection:
            await connection.execute("DELETE FROM replica_log WHERE seq <= ?", (last,))
            await connection.executemany(
                _AT, ((first + index, *row) for index, row in enumerate(snapshot))
            )
