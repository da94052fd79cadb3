"""Validated deliveries in the catalog: each manifest file's state at one destination.

A delivery is identified by its manifest file and destination: delivering the same
manifest to the same place again finds the earlier states, so only what is not yet
valid is moved again.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass

from streamflow_data.catalog.database import Database

__all__ = ["DeliveryRows", "StoredFile"]

_FILE = (
    "INSERT INTO delivery_files (delivery, relpath, size, algorithm, checksum, state, retries, "
    "message) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (delivery, relpath) DO UPDATE SET "
    "size = excluded.size, "
    "algorithm = excluded.algorithm, checksum = excluded.checksum, state = excluded.state, "
    "retries = excluded.retries, message = excluded.message"
)


@dataclass(frozen=True, slots=True)
class StoredFile:
    """One manifest file as an earlier run of the delivery left it."""

    relpath: str
    size: int
    algorithm: str
    checksum: str
    state: str
    retries: int
    message: str | None


class DeliveryRows:
    """The stored states of one delivery; changes are queued to the batched writer."""

    def __init__(self, database: Database, delivery_id: int, files: dict[str, StoredFile]):
        self._database = database
        self.id = delivery_id
        """The delivery's number in the catalog."""
        self.earlier = files
        """What the earlier runs left, by relative path (empty for a new delivery)."""

    @classmethod
    async def begin(
        cls, database: Database, manifest: str, source: str, destination: str
    ) -> DeliveryRows:
        """Find or create the delivery of ``manifest`` from ``source`` to ``destination``."""
        key = f"{manifest}\x1f{source}\x1f{destination}"
        now = time.time()
        found = await database.fetch_all("SELECT id FROM deliveries WHERE key = ?", (key,))
        if found:
            delivery_id = int(found[0][0])
            rows = await database.fetch_all(
                "SELECT relpath, size, algorithm, checksum, state, retries, message "
                "FROM delivery_files WHERE delivery = ?",
                (delivery_id,),
            )
            files = {row[0]: StoredFile(*row) for row in rows}
            async with database.transaction() as connection:
                await connection.execute(
                    "UPDATE deliveries SET updated = ? WHERE id = ?", (now, delivery_id)
                )
            return cls(database, delivery_id, files)
        async with database.transaction() as connection:
            [(delivery_id,)] = await connection.execute(
                "INSERT INTO deliveries (key, manifest, source, destination, started, updated) "
                "VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
                (key, manifest, source, destination, now, now),
            )
            return cls(database, int(delivery_id), {})

    def save(self, files: Iterable[StoredFile]) -> None:
        """Queue the new states of ``files``."""
        for file in files:
            self._database.enqueue(
                _FILE,
                (
                    self.id,
                    file.relpath,
                    file.size,
                    file.algorithm,
                    file.checksum,
                    file.state,
                    file.retries,
                    file.message,
                ),
            )
