"""A queue of transfers in the catalog, which the services sharing it divide.

A transfer submitted to the queue is a row in ``transfer_queue``, ``queued`` until a
worker claims it: on PostgreSQL with ``SELECT ... FOR UPDATE SKIP LOCKED``, so that
workers on several machines claim different rows at once; on a SQLite file under its
write lock. The worker then beats (``heartbeat``) while the transfer runs and records how
it ended. A row whose worker stopped beating for ``stale_lock_after`` seconds (its
process killed, its machine lost) is queued again and claimed by another worker, which
resumes the transfer from the journal: what the first one wrote is not written again.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from streamflow_data.catalog.database import Database, Row
from streamflow_data.config import CatalogSettings
from streamflow_data.errors import UnknownTransferError
from streamflow_data.model import ExecutionLocation

__all__ = ["QueueState", "QueuedTransfer", "TransferQueue"]

QueueState = Literal["queued", "running", "done", "failed", "cancelled"]

_COLUMNS = "id, request, state, owner, attempts, submitted, updated, error"


@dataclass(frozen=True, slots=True)
class QueuedTransfer:
    """One row of the queue: what to copy where, and how far it has got."""

    id: int
    source: tuple[str, str, str]
    """(deployment, location name, path) of the source."""
    targets: tuple[tuple[str, str, str], ...]
    """(deployment, location name, path) of each destination."""
    writable: bool
    links: bool
    state: QueueState = "queued"
    owner: str | None = None
    """The worker that claimed it last."""
    attempts: int = 0
    """How many times it was claimed (more than once: taken over from a dead worker)."""
    submitted: float = 0.0
    updated: float = 0.0
    error: str | None = None

    @classmethod
    def of(
        cls,
        source: tuple[ExecutionLocation, str],
        targets: Sequence[tuple[ExecutionLocation, str]],
        writable: bool = False,
        links: bool = True,
    ) -> QueuedTransfer:
        """A transfer to submit (its id is given by :meth:`TransferQueue.submit`)."""
        where, path = source
        return cls(
            0,
            (where.deployment, where.name, path),
            tuple((location.deployment, location.name, p) for location, p in targets),
            writable,
            links,
        )

    def request_document(self) -> str:
        """What to copy where, as the queue stores it (JSON)."""
        return json.dumps(
            {
                "source": list(self.source),
                "targets": [list(target) for target in self.targets],
                "writable": self.writable,
                "links": self.links,
            }
        )

    @classmethod
    def from_row(cls, row: Row) -> QueuedTransfer:
        """The transfer a row of the queue (its columns in ``_COLUMNS`` order) holds."""
        number, request, state, owner, attempts, submitted, updated, error = row
        document = json.loads(request)
        source = document["source"]
        return cls(
            int(number),
            (source[0], source[1], source[2]),
            tuple((t[0], t[1], t[2]) for t in document["targets"]),
            bool(document["writable"]),
            bool(document["links"]),
            state,
            owner,
            int(attempts),
            float(submitted),
            float(updated),
            error,
        )


class TransferQueue:
    """The catalog's queue of transfers, for workers identified by ``owner`` strings."""

    def __init__(self, database: Database, settings: CatalogSettings) -> None:
        self._database = database
        self._stale_after = settings.stale_lock_after

    async def submit(self, transfer: QueuedTransfer) -> int:
        """Queue ``transfer``; its id."""
        [number] = await self.submit_all([transfer])
        return number

    async def submit_all(self, transfers: Sequence[QueuedTransfer]) -> list[int]:
        """Queue ``transfers``, in order, in one transaction; their ids."""
        now = time.time()
        numbers = []
        async with self._database.transaction() as transaction:
            for transfer in transfers:
                [(number,)] = await transaction.execute(
                    "INSERT INTO transfer_queue (request, state, attempts, submitted, updated) "
                    "VALUES (?, 'queued', 0, ?, ?) RETURNING id",
                    (transfer.request_document(), now, now),
                )
                numbers.append(int(number))
        return numbers

    async def claim(self, owner: str) -> QueuedTransfer | None:
        """Take the oldest queued transfer for ``owner`` (first queueing again those whose
        worker stopped beating); None when there is none."""
        now = time.time()
        suffix = self._database.backend.claim_suffix
        async with self._database.transaction(serialized=False) as transaction:
            await transaction.execute(
                "UPDATE transfer_queue SET state = 'queued', updated = ? "
                "WHERE state = 'running' AND heartbeat < ?",
                (now, now - self._stale_after),
            )
            found = await transaction.execute(
                "SELECT id FROM transfer_queue WHERE state = 'queued' ORDER BY id LIMIT 1" + suffix
            )
            if not found:
                return None
            [(number,)] = found
            rows = await transaction.execute(
                "UPDATE transfer_queue SET state = 'running', owner = ?, heartbeat = ?, "
                f"attempts = attempts + 1, updated = ? WHERE id = ? RETURNING {_COLUMNS}",
                (owner, now, now, number),
            )
        return QueuedTransfer.from_row(rows[0])

    async def beat(self, owner: str, transfers: Sequence[int]) -> list[int]:
        """Say ``owner`` still works on ``transfers``; those of them it no longer holds
        (taken over, or cancelled)."""
        if not transfers:
            return []
        now = time.time()
        marks = ", ".join("?" * len(transfers))
        async with self._database.transaction(serialized=False) as transaction:
            held = await transaction.execute(
                f"UPDATE transfer_queue SET heartbeat = ? WHERE owner = ? AND "
                f"state = 'running' AND id IN ({marks}) RETURNING id",
                (now, owner, *transfers),
            )
        kept = {int(row[0]) for row in held}
        return [number for number in transfers if number not in kept]

    async def finish(
        self, owner: str, transfer: int, state: QueueState, error: str | None = None
    ) -> bool:
        """Record how ``owner``'s run of ``transfer`` ended; False (nothing recorded) when
        it no longer holds it."""
        async with self._database.transaction(serialized=False) as transaction:
            rows = await transaction.execute(
                "UPDATE transfer_queue SET state = ?, error = ?, updated = ? "
                "WHERE id = ? AND owner = ? AND state = 'running' RETURNING id",
                (state, error, time.time(), transfer, owner),
            )
        return bool(rows)

    async def cancel(self, transfer: int) -> QueuedTransfer:
        """Cancel a queued transfer, or ask its worker to stop a running one (it sees it
        at its next beat); an ended one is left as it is."""
        async with self._database.transaction(serialized=False) as transaction:
            await transaction.execute(
                "UPDATE transfer_queue SET state = 'cancelled', updated = ? "
                "WHERE id = ? AND state IN ('queued', 'running')",
                (time.time(), transfer),
            )
        return await self.get(transfer)

    async def get(self, transfer: int) -> QueuedTransfer:
        """The transfer of that id; :class:`UnknownTransferError` if there is none."""
        rows = await self._database.fetch_all(
            f"SELECT {_COLUMNS} FROM transfer_queue WHERE id = ?", (transfer,)
        )
        if not rows:
            raise UnknownTransferError(transfer)
        return QueuedTransfer.from_row(rows[0])

    async def some(self, transfers: Sequence[int]) -> list[QueuedTransfer]:
        """The transfers of these ids that the queue holds."""
        if not transfers:
            return []
        marks = ", ".join("?" * len(transfers))
        rows = await self._database.fetch_all(
            f"SELECT {_COLUMNS} FROM transfer_queue WHERE id IN ({marks})", tuple(transfers)
        )
        return [QueuedTransfer.from_row(row) for row in rows]

    async def counts(self) -> dict[str, int]:
        """How many transfers the queue holds in each state."""
        rows = await self._database.fetch_all(
            "SELECT state, count(*) FROM transfer_queue GROUP BY state"
        )
        counts = dict.fromkeys(("queued", "running", "done", "failed", "cancelled"), 0)
        counts.update({str(state): int(count) for state, count in rows})
        return counts
