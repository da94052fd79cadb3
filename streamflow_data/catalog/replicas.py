"""The replica graph on disk: a log of the changes made to it, replayed on open.

Each registration, relation, invalidation and detachment is appended to ``replica_log``
as it happens; opening the catalog replays the log into a fresh
:class:`~streamflow_data.mapper.RemotePathMapper`, through the same methods that built
the original, so the graph comes back exactly as it was (relations, link targets and
subtree invalidations included). When the log has grown to more than twice what the
graph holds, it is rewritten as a snapshot of the graph. Rows another process appended
since the replay are kept, after the snapshot.

A registration, the bulk of the log, is a row of three values (operation, location,
path), the data type folded into the operation code: the fewer the columns, the faster
SQLite takes a million of them.
"""

from __future__ import annotations

from streamflow_data.catalog.database import Database, Row
from streamflow_data.mapper import RemotePathMapper
from streamflow_data.model import DataLocation, DataType, ExecutionLocation

__all__ = ["ReplicaLog", "location_key"]

# Operation codes of the log.
_PRIMARY = 1
_LINK = 2
_RELATE = 3
_INVALIDATE = 4
_DETACH = 5

_SHORT = "INSERT INTO replica_log (op, location, path) VALUES (?, ?, ?)"
_WITH_RELPATH = "INSERT INTO replica_log (op, location, path, relpath) VALUES (?, ?, ?, ?)"
_RELATION = (
    "INSERT INTO replica_log (op, location, path, other_location, other_path) "
    "VALUES (?, ?, ?, ?, ?)"
)
_AT = (
    "INSERT INTO replica_log (seq, op, location, path, relpath, other_location, other_path) "
    "VALUES (?, ?, ?, ?, ?, ?, ?)"
)
_LOCATION = (
    "INSERT OR IGNORE INTO locations (key, deployment, name, local, hostname) "
    "VALUES (?, ?, ?, ?, ?)"
)


def location_key(location: ExecutionLocation) -> str:
    """How the catalog names a location: what the replica graph indexes it by."""
    return f"{location.deployment}\x1f{location.name}"


class ReplicaLog:
    """Appends the changes of a replica graph to the catalog and replays them."""

    def __init__(self, database: Database) -> None:
        self._database = database
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

    def registered(
        self, location: ExecutionLocation, path: str, relpath: str, data_type: DataType
    ) -> None:
        """``path`` was registered on ``location`` (INVALID: see :meth:`invalidated`)."""
        if data_type is DataType.PRIMARY:
            op = _PRIMARY
        elif data_type is DataType.SYMBOLIC_LINK:
            op = _LINK
        else:
            self.invalidated(location, path)
            return
        if relpath == path:
            self._database.enqueue(_SHORT, (op, self._key(location), path))
        else:
            self._database.enqueue(_WITH_RELPATH, (op, self._key(location), path, relpath))

    def related(self, first: DataLocation, second: DataLocation) -> None:
        """Two replicas were related."""
        self._database.enqueue(_RELATION, self._relation(first, second))

    def _relation(self, first: DataLocation, second: DataLocation) -> Row:
        key, other = self._key(first.location), self._key(second.location)
        return (_RELATE, key, first.path, other, second.path)

    def invalidated(self, location: ExecutionLocation, path: str) -> None:
        """``path`` and its subtree on ``location`` were invalidated."""
        self._database.enqueue(_SHORT, (_INVALIDATE, self._key(location), path))

    def detached(self, replica: DataLocation) -> None:
        """A replica left its replica set."""
        self._database.enqueue(_SHORT, (_DETACH, self._key(replica.location), replica.path))

    # -- replay --------------------------------------------------------------------------------

    async def load(self, mapper: RemotePathMapper) -> None:
        """Replay the log into ``mapper``, then compact the log if it has grown large."""
        database = self._database
        locations: dict[str, ExecutionLocation] = {}
        for key, deployment, name, local, hostname in await database.fetch_all(
            "SELECT key, deployment, name, local, hostname FROM locations"
        ):
            location = locations[key] = ExecutionLocation(deployment, name, bool(local), hostname)
            self._keys[id(location)] = (location, key)
        [(last,)] = await database.fetch_all("SELECT coalesce(max(seq), 0) FROM replica_log")
        replayed = 0
        register, find = mapper.register, mapper.find
        primary, link = DataType.PRIMARY, DataType.SYMBOLIC_LINK
        async for rows in database.fetch(
            "SELECT op, location, path, relpath, other_location, other_path "
            "FROM replica_log WHERE seq <= ? ORDER BY seq",
            (last,),
        ):
            for op, key, path, relpath, other_key, other_path in rows:
                if op == _PRIMARY:
                    register(locations[key], path, relpath, primary)
                elif op == _LINK:
                    register(locations[key], path, relpath, link)
                elif op == _INVALIDATE:
                    mapper.invalidate(locations[key], path)
                elif op == _RELATE:
                    first = find(locations[key], path)
                    second = find(locations[other_key], other_path)
                    if first is not None and second is not None:
                        mapper.register_relation(first, second)
                elif op == _DETACH and (replica := find(locations[key], path)) is not None:
                    mapper.detach(replica)
            replayed += len(rows)
        if replayed > 2 * len(mapper) + 1000:
            await self._compact(self._snapshot(mapper), last)

    def _snapshot(self, mapper: RemotePathMapper) -> list[Row]:
        """Log rows that rebuild ``mapper`` as it is: parents before children, then the
        links' targets, then the replica sets."""
        rows: list[Row] = []
        for replica in sorted(mapper.replicas(), key=lambda r: r.path):
            op = _PRIMARY if replica.data_type is DataType.PRIMARY else _LINK
            relpath = None if replica.relpath == replica.path else replica.relpath
            rows.append((op, self._key(replica.location), replica.path, relpath, None, None))
        pairs = list(mapper.link_targets())
        for replica_set in mapper.replica_sets():
            pairs.extend((replica_set[0], member) for member in replica_set[1:])
        for first, second in pairs:
            _, key, path, other, other_path = self._relation(first, second)
            rows.append((_RELATE, key, path, None, other, other_path))
        return rows

    async def _compact(self, snapshot: list[Row], last: int) -> None:
        """Replace the log up to ``last`` by ``snapshot``, keeping later rows after it."""
        await self._database.flush()  # locations of the snapshot first
        first = last - len(snapshot) + 1
        async with self._database.transaction() as connection:
            await connection.execute("DELETE FROM replica_log WHERE seq <= ?", (last,))
            await connection.executemany(
                _AT, ((first + index, *row) for index, row in enumerate(snapshot))
            )
