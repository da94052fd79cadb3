"""The catalog in a SQLite file (aiosqlite): the embedded default.

A write transaction is ``BEGIN IMMEDIATE``: it takes the file's write lock at once, so
writers in several processes take turns (for up to ``busy_timeout``) and never deadlock.
Every ``sqlite3`` error becomes a :class:`~streamflow_data.errors.CatalogError` here.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
from collections.abc import AsyncIterator, Iterable
from typing import cast

import aiosqlite

from streamflow_data.catalog.database import SCHEMA_VERSION, Backend, Row
from streamflow_data.catalog.schema import MIGRATIONS
from streamflow_data.errors import CatalogError

__all__ = ["SqliteBackend"]


def _translate(path: str, error: sqlite3.Error, busy_timeout: float) -> CatalogError:
    text = str(error)
    if "locked" in text or "busy" in text:
        detail = f"locked by another process for more than {busy_timeout:g} s ({text})"
    elif isinstance(error, sqlite3.DatabaseError) and (
        "not a database" in text or "malformed" in text or "corrupt" in text
    ):
        detail = f"not a SQLite database, or damaged ({text})"
    elif "readonly" in text or "unable to open" in text:
        detail = f"cannot be opened for writing ({text})"
    else:
        detail = f"database error ({text})"
    return CatalogError(path, detail)


def _check_openable(path: str, busy_timeout: float) -> None:
    """Create the directory of ``path`` and open the file once, so that what stops it
    being opened is a :class:`CatalogError`. (aiosqlite, failing to open a file, leaves a
    task to its thread that reports to the event loop after it may have closed.)"""
    directory = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(directory, exist_ok=True)
    except FileExistsError as exc:  # a file where a directory must be
        raise CatalogError(path, f"{exc.filename!r} is not a directory") from exc
    except OSError as exc:
        raise CatalogError(path, f"{directory!r} cannot be created ({exc.strerror})") from exc
    if os.path.isdir(path):
        raise CatalogError(path, "is a directory; name a file in it")
    try:
        sqlite3.connect(path, timeout=busy_timeout).close()
    except sqlite3.Error as exc:
        raise _translate(path, exc, busy_timeout) from exc


class _Transaction:
    """:class:`~streamflow_data.catalog.database.Transaction` on an aiosqlite connection."""

    def __init__(self, connection: aiosqlite.Connection) -> None:
        self._connection = connection

    async def execute(self, statement: str, parameters: Row = ()) -> list[Row]:
        async with self._connection.execute(statement, parameters) as cursor:
            return cast("list[Row]", list(await cursor.fetchall()))

    async def executemany(self, statement: str, rows: Iterable[Row]) -> None:
        await self._connection.executemany(statement, rows)


class SqliteBackend(Backend):
    """One catalog file, migrated to :data:`SCHEMA_VERSION` (``:memory:`` allowed)."""

    def __init__(self, path: str, connection: aiosqlite.Connection, busy_timeout: float):
        self.name = path
        self._connection = connection
        self._busy_timeout = busy_timeout
        # A read still open on the connection holds a snapshot: a write transaction begun
        # meanwhile cannot take the write lock once another process has written (SQLite
        # says "locked" at once, without waiting). Reads and transactions take turns.
        self._turn = asyncio.Lock()

    @classmethod
    async def open(cls, path: str, busy_timeout: float) -> SqliteBackend:
        """Open (creating or upgrading) the catalog at ``path``, and the directory it is in."""
        if path != ":memory:":
            await asyncio.to_thread(_check_openable, path, busy_timeout)
        try:
            connection = await aiosqlite.connect(path, timeout=busy_timeout, isolation_level=None)
        except sqlite3.Error as exc:
            raise _translate(path, exc, busy_timeout) from exc
        try:
            await cls._prepare(connection, path)
        except sqlite3.Error as exc:
            await connection.close()
            raise _translate(path, exc, busy_timeout) from exc
        except BaseException:
            await connection.close()
            raise
        return cls(path, connection, busy_timeout)

    @staticmethod
    async def _prepare(connection: aiosqlite.Connection, path: str) -> None:
        if path != ":memory:":
            await connection.execute("PRAGMA journal_mode=WAL")
        await connection.execute("PRAGMA synchronous=NORMAL")
        # A damaged page must stop a command before it moves data, not when it records
        # the copies afterwards: every page is read once (milliseconds for megabytes).
        async with connection.execute("PRAGMA quick_check") as cursor:
            found = [str(row[0]) for row in await cursor.fetchall()]
        if found != ["ok"]:
            detail = " ".join(found[0].split())
            raise CatalogError(path, f"not a SQLite database, or damaged ({detail})")
        await connection.execute("BEGIN IMMEDIATE")
        try:
            tables = {
                row[0]
                async for row in await connection.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'table'"
                )
            }
            version = 0
            if "schema_version" in tables:
                async with connection.execute("SELECT version FROM schema_version") as cursor:
                    row = await cursor.fetchone()
                    version = 0 if row is None else int(row[0])
            elif tables:
                raise CatalogError(path, "not a streamflow-data catalog (no schema_version table)")
            else:
                await connection.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
                await connection.execute("INSERT INTO schema_version VALUES (0)")
            if version > SCHEMA_VERSION:
                raise CatalogError(
                    path,
                    f"written by a newer streamflow-data (schema {version}; this version "
                    f"reads schema {SCHEMA_VERSION} and older)",
                )
            for step in range(version + 1, SCHEMA_VERSION + 1):
                for statement in MIGRATIONS[step]:
                    await connection.execute(statement)
                await connection.execute("UPDATE schema_version SET version = ?", (step,))
            await connection.execute("COMMIT")
        except BaseException:
            await connection.execute("ROLLBACK")
            raise

    @contextlib.asynccontextmanager
    async def transaction(self, serialized: bool = True) -> AsyncIterator[_Transaction]:
        connection = self._connection
        async with self._turn:
            try:
                await connection.execute("BEGIN IMMEDIATE")
                try:
                    yield _Transaction(connection)
                except BaseException:
                    await connection.execute("ROLLBACK")
                    raise
                await connection.execute("COMMIT")
            except sqlite3.Error as exc:
                raise _translate(self.name, exc, self._busy_timeout) from exc

    async def fetch(self, query: str, parameters: Row, size: int) -> AsyncIterator[list[Row]]:
        try:
            async with self._turn, self._connection.execute(query, parameters) as cursor:
                # Fetch the next rows on aiosqlite's thread while the caller uses these.
                ahead = asyncio.ensure_future(cursor.fetchmany(size))
                try:
                    while rows := await ahead:
                        ahead = asyncio.ensure_future(cursor.fetchmany(size))
                        yield cast("list[Row]", rows)  # plain tuples: no row factory is set
                finally:
                    if not ahead.done():
                        ahead.cancel()
                    with contextlib.suppress(asyncio.CancelledError, sqlite3.Error):
                        await ahead
        except sqlite3.Error as exc:
            raise _translate(self.name, exc, self._busy_timeout) from exc

    async def close(self) -> None:
        await self._connection.close()
