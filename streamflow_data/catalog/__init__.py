"""The catalog: what a data manager knows, kept across restarts in a SQLite file
(:mod:`.sqlite`) or a PostgreSQL database (:mod:`.postgres`), chosen by its path.

It holds the replica graph (:mod:`.replicas`), the journal of every transfer
(:mod:`.journal`), the destination locks that managers sharing the catalog take
(:mod:`.locks`), the states of validated deliveries (:mod:`.deliveries`) and the
statistics of every run (:mod:`.totals`), all written through one batched background
writer (:mod:`.database`), in the tables of :mod:`.schema`.
"""

from __future__ import annotations

from collections.abc import Sequence

from streamflow_data.catalog.database import SCHEMA_VERSION, Backend, Database, is_postgres
from streamflow_data.catalog.deliveries import DeliveryRows, StoredFile
from streamflow_data.catalog.follow import Follower
from streamflow_data.catalog.journal import (
    SqliteJournal,
    TransferRecord,
    already_valid,
    dump_state,
    transfer_records,
)
from streamflow_data.catalog.locks import TransferLocks
from streamflow_data.catalog.queue import TransferQueue
from streamflow_data.catalog.replicas import ReplicaLog
from streamflow_data.catalog.sqlite import SqliteBackend
from streamflow_data.catalog.totals import add_statistics, load_statistics
from streamflow_data.changes import GraphObserver
from streamflow_data.config import CatalogSettings
from streamflow_data.connectors.base import WalkEntry
from streamflow_data.mapper import RemotePathMapper
from streamflow_data.model import ExecutionLocation
from streamflow_data.transfer.stats import Statistics

__all__ = ["SCHEMA_VERSION", "Catalog", "DeliveryRows", "StoredFile", "TransferRecord"]


class Catalog:
    """An open catalog: the replica log, the transfer journal and the locks."""

    def __init__(self, database: Database, settings: CatalogSettings) -> None:
        self.settings = settings
        self._database = database
        self.replicas = ReplicaLog(database)
        """Records every change of the replica graph."""
        self.locks = TransferLocks(database, settings)
        """The destination locks of the manager that opened the catalog."""
        self.queue = TransferQueue(database, settings)
        """The transfers submitted to the workers sharing the catalog."""
        self.follower: Follower | None = None
        """What reads other managers' changes, once the graph is loaded."""

    @classmethod
    async def open(cls, settings: CatalogSettings) -> Catalog:
        """Open the catalog, creating it or upgrading its schema as needed.

        Raises :class:`~streamflow_data.errors.CatalogError` for a file or database that
        is not a catalog, is damaged, is locked for longer than ``busy_timeout``, was
        written by a newer version, or whose server cannot be reached.
        """
        backend: Backend
        if is_postgres(settings.path):
            from streamflow_data.catalog.postgres import PostgresBackend  # asyncpg: only here

            backend = await PostgresBackend.open(settings.path, settings.busy_timeout)
        else:
            backend = await SqliteBackend.open(settings.path, settings.busy_timeout)
        return cls(Database(backend), settings)

    @property
    def path(self) -> str:
        """The catalog file, or the database's URL without its password."""
        return self._database.path

    @property
    def database(self) -> Database:
        """The catalog's database (for queries no method here makes)."""
        return self._database

    async def load(self, mapper: RemotePathMapper, observer: GraphObserver) -> None:
        """Rebuild the replica graph saved in the catalog into ``mapper``, then keep it
        current with the changes other managers sharing the catalog write (see
        :mod:`.follow`), telling ``observer`` each one."""
        await self.replicas.load(mapper)
        interval = self.settings.follow_interval
        if interval > 0 and self.settings.path != ":memory:":
            self.follower = Follower(self.replicas, mapper, observer, interval)

    async def journal(
        self,
        source: ExecutionLocation,
        src_path: str,
        destinations: Sequence[tuple[ExecutionLocation, str]],
    ) -> SqliteJournal:
        """The journal of a transfer with these arguments (``destinations`` are
        (location, path) pairs), with its earlier run if any."""
        return await SqliteJournal.begin(self._database, source, src_path, destinations)

    async def already_valid(
        self,
        source: ExecutionLocation,
        src_path: str,
        destinations: Sequence[tuple[ExecutionLocation, str]],
        files: Sequence[WalkEntry],
    ) -> list[tuple[int, int]]:
        """Per destination, the files and bytes of ``files`` an earlier run left valid
        (see :func:`.journal.already_valid`); nothing is written."""
        return await already_valid(self._database, source, src_path, destinations, files)

    async def transfers(self, transfer: int | None = None) -> list[TransferRecord]:
        """Journaled transfers, newest first (only ``transfer`` when given)."""
        await self._database.flush()
        return await transfer_records(self._database, transfer)

    async def dump_state(self, transfer: int) -> str:
        """The per-file states of a transfer as CSV (see :func:`.journal.dump_state`)."""
        return await dump_state(self._database, transfer)

    async def delivery(self, manifest: str, source: str, destination: str) -> DeliveryRows:
        """The stored states of delivering ``manifest`` from ``source`` to ``destination``."""
        return await DeliveryRows.begin(self._database, manifest, source, destination)

    async def statistics(self) -> Statistics:
        """The statistics of every manager that closed with this catalog, added up."""
        await self._database.flush()
        return await load_statistics(self._database)

    async def flush(self) -> None:
        """Write every change queued so far."""
        await self._database.flush()

    async def close(self, statistics: Statistics | None = None) -> None:
        """Add ``statistics`` to the totals, release locks, write what is queued, close."""
        try:
            if self.follower is not None:
                await self.follower.stop()
            if statistics is not None:
                await add_statistics(self._database, statistics)
            await self.locks.close()
        finally:
            await self._database.close()
