"""The catalog: what a data manager knows, kept in one SQLite file across restarts.

It holds the replica graph (:mod:`.replicas`), the journal of every transfer
(:mod:`.journal`) and the destination locks that managers sharing the file take
(:mod:`.locks`), all written through one batched background writer
(:mod:`.database`).
"""

from __future__ import annotations

from collections.abc import Sequence

from streamflow_data.catalog.database import SCHEMA_VERSION, Database
from streamflow_data.catalog.journal import (
    SqliteJournal,
    TransferRecord,
    dump_state,
    transfer_records,
)
from streamflow_data.catalog.locks import TransferLocks
from streamflow_data.catalog.replicas import ReplicaLog
from streamflow_data.config import CatalogSettings
from streamflow_data.mapper import RemotePathMapper
from streamflow_data.model import ExecutionLocation

__all__ = ["SCHEMA_VERSION", "Catalog", "TransferRecord"]


class Catalog:
    """An open catalog file: the replica log, the transfer journal and the locks."""

    def __init__(self, database: Database, settings: CatalogSettings) -> None:
        self.settings = settings
        self._database = database
        self.replicas = ReplicaLog(database)
        """Records every change of the replica graph."""
        self.locks = TransferLocks(database, settings)
        """The destination locks of the manager that opened the catalog."""

    @classmethod
    async def open(cls, settings: CatalogSettings) -> Catalog:
        """Open the catalog file, creating it or upgrading its schema as needed.

        Raises :class:`~streamflow_data.errors.CatalogError` for a file that is not a
        catalog, is damaged, is locked for longer than ``busy_timeout``, or was written
        by a newer version.
        """
        return cls(await Database.open(settings.path, settings.busy_timeout), settings)

    @property
    def path(self) -> str:
        """The catalog file."""
        return self._database.path

    async def load(self, mapper: RemotePathMapper) -> None:
        """Rebuild the replica graph saved in the catalog into ``mapper``."""
        await self.replicas.load(mapper)

    async def journal(
        self,
        source: ExecutionLocation,
        src_path: str,
        destinations: Sequence[ExecutionLocation],
        dst_path: str,
    ) -> SqliteJournal:
        """The journal of a transfer with these arguments, with its earlier run if any."""
        return await SqliteJournal.begin(self._database, source, src_path, destinations, dst_path)

    async def transfers(self, transfer: int | None = None) -> list[TransferRecord]:
        """Journaled transfers, newest first (only ``transfer`` when given)."""
        await self._database.flush()
        return await transfer_records(self._database, transfer)

    async def dump_state(self, transfer: int) -> str:
        """The per-file states of a transfer as CSV (see :func:`.journal.dump_state`)."""
        return await dump_state(self._database, transfer)

    async def flush(self) -> None:
        """Write every change queued so far."""
        await self._database.flush()

    async def close(self) -> None:
        """Release locks, write what is queued, close the file."""
        try:
            await self.locks.close()
        finally:
            await self._database.close()
