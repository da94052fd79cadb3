"""The catalog's database: batched background writes over a backend.

Everything the catalog stores goes through one :class:`Database`. Synchronous callers
(the replica graph's registration methods, the transfer engine's journal) only
:meth:`Database.enqueue` rows; a background task writes what has queued up in one
transaction at a time, so a burst of a million registrations costs a few large
``executemany`` calls, never a blocking call on the event loop. A :class:`Backend` holds
the database itself: a SQLite file (:mod:`.sqlite`) or a PostgreSQL server
(:mod:`.postgres`); its errors come out as :class:`~streamflow_data.errors.CatalogError`.

Statements are written once for both: ``?`` placeholders, ``INSERT ... ON CONFLICT
(columns) DO ...`` and ``RETURNING``, which SQLite and PostgreSQL both understand.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import logging
import time
import urllib.parse
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any, Protocol

from streamflow_data.config import backoff
from streamflow_data.errors import CatalogError

__all__ = [
    "SCHEMA_VERSION",
    "URL_SCHEMES",
    "Backend",
    "Database",
    "Row",
    "Transaction",
    "is_postgres",
    "redacted_url",
]

Row = tuple[Any, ...]

logger = logging.getLogger(__name__)

RECONNECT_FOR = 60.0
"""Seconds the writer keeps trying to write queued rows to a database it cannot reach."""

SCHEMA_VERSION = 7
"""The schema this version of streamflow-data writes; older catalogs are upgraded to it,
newer ones refused."""
URL_SCHEMES = ("postgresql://", "postgres://")
"""A catalog given as a URL of these schemes is a PostgreSQL database, not a file."""


def is_postgres(location: str) -> bool:
    """Whether a catalog location names a PostgreSQL server rather than a file."""
    return location.startswith(URL_SCHEMES)


def redacted_url(url: str) -> str:
    """``url`` with its password masked, for messages."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    user = urllib.parse.quote(parts.username or "")
    return urllib.parse.urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


class Transaction(Protocol):
    """One write transaction of a backend."""

    async def execute(self, statement: str, parameters: Row = ()) -> list[Row]:
        """Run ``statement``; the rows it returns (a ``SELECT`` or a ``RETURNING``)."""
        ...

    async def executemany(self, statement: str, rows: Iterable[Row]) -> None:
        """Run ``statement`` once for each row."""
        ...


class Backend(abc.ABC):
    """Where a catalog's tables live, migrated to :data:`SCHEMA_VERSION`."""

    name: str
    """What error messages call it: a file's path, or a server's URL without password."""
    claim_suffix: str = ""
    """How a ``SELECT`` of rows to claim ends, so that concurrent claimers skip each
    other's rows (PostgreSQL's ``FOR UPDATE SKIP LOCKED``; a SQLite file has one writer)."""

    @abc.abstractmethod
    def transaction(
        self, serialized: bool = True
    ) -> contextlib.AbstractAsyncContextManager[Transaction]:
        """One write transaction, taken so that writers of several processes take turns
        (they never deadlock); committed when the block ends, rolled back if it raises.
        ``serialized=False``: the transaction's own row locks suffice, it need not wait
        for every other writer (where the backend can tell the difference)."""

    @abc.abstractmethod
    def fetch(self, query: str, parameters: Row, size: int) -> AsyncIterator[list[Row]]:
        """The rows of ``query``, in lists of up to ``size``."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Close the connection(s)."""


class Database:
    """One open catalog: its backend, and the writer of queued rows."""

    def __init__(self, backend: Backend):
        self.backend = backend
        self.path = backend.name
        self._pending: list[tuple[str, list[Row]]] = []  # runs of rows of one statement
        self._taken = 0  # batches the writer has taken
        self._written = 0  # batches the writer has written
        self._changed = asyncio.Condition()
        self._wake = asyncio.Event()
        self._error: CatalogError | None = None
        self._converters: dict[str, Callable[[list[Any]], Iterable[Row]]] = {}
        self._one_transaction = asyncio.Lock()
        self._writer = asyncio.create_task(self._write_forever(), name=f"catalog {self.path}")

    # -- writes ------------------------------------------------------------------------------

    def convert(self, statement: str, converter: Callable[[list[Any]], Iterable[Row]]) -> None:
        """Queued items of ``statement`` are turned into rows by ``converter`` only when
        written, a run at a time (lazily): queuing costs one append.
        ``converter`` must only read state that is set before an item is queued."""
        self._converters[statement] = converter

    def enqueue(self, statement: str, row: Any) -> None:
        """Queue one row for ``statement``; rows are written in the order queued.

        Consecutive rows of one statement go to the database in one ``executemany``.
        """
        pending = self._pending
        if pending and pending[-1][0] is statement:
            pending[-1][1].append(row)
            return
        if self._error is not None:
            raise self._error
        pending.append((statement, [row]))
        self._wake.set()

    async def _write_forever(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._pending:
                batch, self._pending = self._pending, []
                self._taken += 1
                try:
                    await self._write(batch)
                except CatalogError as exc:
                    self._error = exc
                except Exception as exc:  # a row sqlite cannot bind: report, never hang
                    self._error = CatalogError(self.path, f"could not write ({exc!r})")
                self._written += 1
                async with self._changed:
                    self._changed.notify_all()

    async def _write(self, batch: list[tuple[str, list[Any]]]) -> None:
        """Write ``batch`` in one transaction; while the database cannot be reached
        (:attr:`CatalogError.transient`), try again for up to :data:`RECONNECT_FOR`
        seconds: queued rows are not lost to a server restarting."""
        deadline = time.monotonic() + RECONNECT_FOR
        attempt = 0
        while True:
            try:
                await self._transaction(batch)
                return
            except CatalogError as exc:
                attempt += 1
                if not exc.transient or time.monotonic() > deadline:
                    raise
                logger.warning(
                    "catalog %s: %s; writing again (attempt %d)", self.path, exc, attempt
                )
                await asyncio.sleep(backoff(0.1, attempt))

    async def _transaction(self, batch: Iterable[tuple[str, list[Any]]]) -> None:
        async with self.transaction() as transaction:
            for statement, rows in batch:
                converter = self._converters.get(statement)
                await transaction.executemany(
                    statement, rows if converter is None else converter(rows)
                )

    @contextlib.asynccontextmanager
    async def transaction(self, serialized: bool = True) -> AsyncIterator[Transaction]:
        """One write transaction (one at a time in this process; see
        :meth:`Backend.transaction`)."""
        async with self._one_transaction, self.backend.transaction(serialized) as transaction:
            yield transaction

    async def flush(self) -> None:
        """Wait until every row queued so far is written; raise the writer's error if any."""
        target = self._taken + (1 if self._pending else 0)
        async with self._changed:
            await self._changed.wait_for(lambda: self._written >= target or self._writer.done())
        if self._error is not None:
            raise self._error

    # -- reads --------------------------------------------------------------------------------

    def fetch(
        self, query: str, parameters: Row = (), size: int = 50_000
    ) -> AsyncIterator[list[Row]]:
        """The rows of ``query``, in lists of up to ``size``."""
        return self.backend.fetch(query, parameters, size)

    async def fetch_all(self, query: str, parameters: Row = ()) -> list[Row]:
        """Every row of ``query``."""
        found: list[Row] = []
        async for rows in self.fetch(query, parameters):
            found.extend(rows)
        return found

    async def close(self) -> None:
        """Write what is queued, then close the backend."""
        try:
            await self.flush()
        finally:
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer
            await self.backend.close()
