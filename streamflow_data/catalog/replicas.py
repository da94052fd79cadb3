"""The replica graph on disk: a log of the changes made to it, replayed on open.

Each registration, relation, invalidation and detachment is appended to ``replica_log``
as it happens; opening the catalog replays the log into a fresh
:class:`~streamflow_data.mapper.RemotePathMapper`, through the same methods that built
the original, so the graph comes back exactly as it was (relations, link targets and
subtree invalidations included). When the log has grown to more than twice what the
graph holds, it is rewritten as a snapshot of the graph. Rows another process appended
since the replay are kept, after the snapshot.
"""

from __future__ import annotations

import enum

from streamflow_data.catalog.database import Database, Row
from streamflow_data.mapper import RemotePathMapper
from streamflow_data.model import DataLocation, DataType, ExecutionLocation

__all__ = ["ReplicaLog", "location_key"]


class _Op(enum.IntEnum):
    REGISTER = 1
    RELATE = 2
    INVALIDATE = 3
    DETACH = 4


_TYPES = {DataType.PRIMARY: 1, DataType.SYMBOLIC_LINK: 2}
_TYPE_OF = {code: data_type for data_type, code in _TYPES.items()}

_APPEND = (
    "INSERT INTO replica_log (op, location, path, relpath, data_type, other_location, "
    "other_path) VALUES (?, ?, ?, ?, ?, ?, ?)"
)
_APPEND_AT = (
    "INSERT INTO replica_log (seq, op, location, path, relpath, data_type, other_location, "
    "other_path) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
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
        self._keys: dict[ExecutionLocation, str] = {}

    def _key(self, location: ExecutionLocation) -> str:
        key = self._keys.get(location)
        if key is None:
            key = self._keys[location] = location_key(location)
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
        if data_type is DataType.INVALID:
            self.invalidated(location, path)
            return
        relpath_or_none = None if relpath == path else relpath
        self._database.enqueue(
            _APPEND,
            (
                _Op.REGISTER,
                self._key(location),
                path,
                relpath_or_none,
                _TYPES[data_type],
                None,
                None,
            ),
        )

    def related(self, first: DataLocation, second: DataLocation) -> None:
        """Two replicas were related."""
        self._database.enqueue(
            _APPEND,
            (
                _Op.RELATE,
                self._key(first.location),
                first.path,
                None,
                None,
                self._key(second.location),
                second.path,
            ),
        )

    def invalidated(self, location: ExecutionLocation, path: str) -> None:
        """``path`` and its subtree on ``location`` were invalidated."""
        self._database.enqueue(
            _APPEND, (_Op.INVALIDATE, self._key(location), path, None, None, None, None)
        )

    def detached(self, replica: DataLocation) -> None:
        """A replica left its replica set."""
        self._database.enqueue(
            _APPEND,
            (_Op.DETACH, self._key(replica.location), replica.path, None, None, None, None),
        )

    # -- replay --------------------------------------------------------------------------------

    async def load(self, mapper: RemotePathMapper) -> None:
        """Replay the log into ``mapper``, then compact the log if it has grown large."""
        locations: dict[str, ExecutionLocation] = {}
        for key, deployment, name, local, hostname in await self._database.fetch_all(
            "SELECT key, deployment, name, local, hostname FROM locations"
        ):
            locations[key] = ExecutionLocation(deployment, name, bool(local), hostname)
        self._keys = {location: key for key, location in locations.items()}
        replayed, last = 0, 0
        register, find = mapper.register, mapper.find
        async for rows in self._database.fetch(
            "SELECT seq, op, location, path, relpath, data_type, other_location, other_path "
            "FROM replica_log ORDER BY seq"
        ):
            for _seq, op, key, path, relpath, data_type, other_key, other_path in rows:
                location = locations[key]
                if op == _Op.REGISTER:
                    register(location, path, relpath, _TYPE_OF[data_type])
                elif op == _Op.INVALIDATE:
                    mapper.invalidate(location, path)
                elif op == _Op.RELATE:
                    first = find(location, path)
                    second = find(locations[other_key], other_path)
                    if first is not None and second is not None:
                        mapper.register_relation(first, second)
                elif op == _Op.DETACH and (replica := find(location, path)) is not None:
                    mapper.detach(replica)
            replayed += len(rows)
            last = rows[-1][0]
        snapshot = self._snapshot(mapper)
        if replayed > 2 * len(snapshot) + 1000:
            await self._compact(snapshot, last)

    def _snapshot(self, mapper: RemotePathMapper) -> list[Row]:
        """Log rows that rebuild ``mapper`` as it is: parents before children, then the
        links' targets, then the replica sets."""
        rows: list[Row] = []
        for replica in sorted(mapper.replicas(), key=lambda r: r.path):
            relpath = None if replica.relpath == replica.path else replica.relpath
            code = _TYPES[replica.data_type]
            key = self._key(replica.location)
            rows.append((_Op.REGISTER, key, replica.path, relpath, code, None, None))
        pairs = list(mapper.link_targets())
        for replica_set in mapper.replica_sets():
            pairs.extend((replica_set[0], member) for member in replica_set[1:])
        for first, second in pairs:
            rows.append(
                (
                    _Op.RELATE,
                    self._key(first.location),
                    first.path,
                    None,
                    None,
                    self._key(second.location),
                    second.path,
                )
            )
        return rows

    async def _compact(self, snapshot: list[Row], last: int) -> None:
        """Replace the log up to ``last`` by ``snapshot``, keeping later rows after it."""
        await self._database.flush()  # locations of the snapshot first
        first = last - len(snapshot) + 1
        async with self._database.transaction() as connection:
            await connection.execute("DELETE FROM replica_log WHERE seq <= ?", (last,))
            await connection.executemany(
                _APPEND_AT, ((first + index, *row) for index, row in enumerate(snapshot))
            )
