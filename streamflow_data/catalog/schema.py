"""The catalog's tables, one migration per schema version, in SQLite's dialect.

A catalog at version N is upgraded by running the statements of N+1, N+2, ... up to
:data:`~streamflow_data.catalog.database.SCHEMA_VERSION`, in one transaction. PostgreSQL
runs the same migrations, their types translated (:mod:`.postgres`).
"""

from __future__ import annotations

from collections.abc import Sequence

from streamflow_data.catalog.database import SCHEMA_VERSION

__all__ = ["MIGRATIONS"]

MIGRATIONS: dict[int, Sequence[str]] = {
    1: (
        """CREATE TABLE locations (
            key TEXT PRIMARY KEY, deployment TEXT NOT NULL, name TEXT NOT NULL,
            local INTEGER NOT NULL, hostname TEXT)""",
        """CREATE TABLE replica_log (
            seq INTEGER PRIMARY KEY, op INTEGER NOT NULL, location TEXT NOT NULL,
            path TEXT NOT NULL, relpath TEXT, other_location TEXT, other_path TEXT,
            names TEXT)""",
    ),
    2: (
        """CREATE TABLE transfers (
            id INTEGER PRIMARY KEY, key TEXT NOT NULL UNIQUE, source TEXT NOT NULL,
            src_path TEXT NOT NULL, destinations TEXT NOT NULL, dst_path TEXT NOT NULL,
            state TEXT NOT NULL, chunk_size INTEGER, block_size INTEGER,
            files INTEGER, bytes INTEGER, started REAL NOT NULL, updated REAL NOT NULL)""",
        """CREATE TABLE transfer_roots (
            transfer INTEGER NOT NULL, destination INTEGER NOT NULL, root TEXT NOT NULL,
            staged INTEGER NOT NULL, PRIMARY KEY (transfer, destination))""",
        """CREATE TABLE transfer_files (
            transfer INTEGER NOT NULL, relpath TEXT NOT NULL, size INTEGER NOT NULL,
            mtime_ns INTEGER NOT NULL, PRIMARY KEY (transfer, relpath)) WITHOUT ROWID""",
        """CREATE TABLE file_states (
            transfer INTEGER NOT NULL, relpath TEXT NOT NULL, destination INTEGER NOT NULL,
            state TEXT NOT NULL, token TEXT,
            PRIMARY KEY (transfer, relpath, destination)) WITHOUT ROWID""",
        """CREATE TABLE chunk_marks (
            transfer INTEGER NOT NULL, relpath TEXT NOT NULL, destination INTEGER NOT NULL,
            chunk INTEGER NOT NULL, done INTEGER NOT NULL, crc INTEGER NOT NULL,
            PRIMARY KEY (transfer, relpath, destination, chunk)) WITHOUT ROWID""",
        """CREATE TABLE locks (
            location TEXT NOT NULL, path TEXT NOT NULL, owner TEXT NOT NULL,
            holder TEXT NOT NULL, host TEXT NOT NULL, pid INTEGER NOT NULL,
            heartbeat REAL NOT NULL, PRIMARY KEY (location, path))""",
    ),
    3: (
        """CREATE TABLE location_totals (
            deployment TEXT NOT NULL, name TEXT NOT NULL, bytes_read INTEGER NOT NULL,
            bytes_written INTEGER NOT NULL, read_seconds REAL NOT NULL,
            write_seconds REAL NOT NULL, PRIMARY KEY (deployment, name))""",
        "CREATE TABLE counters (name TEXT PRIMARY KEY, value REAL NOT NULL)",
        """CREATE TABLE deliveries (
            id INTEGER PRIMARY KEY, key TEXT NOT NULL UNIQUE, manifest TEXT NOT NULL,
            source TEXT NOT NULL, destination TEXT NOT NULL, started REAL NOT NULL,
            updated REAL NOT NULL)""",
        """CREATE TABLE delivery_files (
            delivery INTEGER NOT NULL, relpath TEXT NOT NULL, size INTEGER NOT NULL,
            algorithm TEXT NOT NULL, checksum TEXT NOT NULL, state TEXT NOT NULL,
            retries INTEGER NOT NULL, message TEXT,
            PRIMARY KEY (delivery, relpath)) WITHOUT ROWID""",
    ),
    # Each destination of a transfer has its own path (a JSON list, in the order of
    # ``destinations``); ``dst_path`` keeps the first, NULL ``dst_paths`` means all share it.
    4: (
        "ALTER TABLE transfers ADD COLUMN dst_paths TEXT",
        "CREATE INDEX transfers_by_source ON transfers (source, src_path)",
    ),
    # What the check of the last run's copies proved at each destination (a JSON list in
    # the order of ``destinations``; see Verification): NULL before schema 5.
    5: ("ALTER TABLE transfers ADD COLUMN verifications TEXT",),
    # Which catalog opening wrote each change (NULL before schema 6): managers sharing the
    # catalog read each other's changes as they come, and skip their own.
    6: ("ALTER TABLE replica_log ADD COLUMN origin TEXT",),
    # Transfers submitted to the services sharing the catalog (see .queue).
    7: (
        """CREATE TABLE transfer_queue (
            id INTEGER PRIMARY KEY, request TEXT NOT NULL, state TEXT NOT NULL,
            owner TEXT, heartbeat REAL, attempts INTEGER NOT NULL, submitted REAL NOT NULL,
            updated REAL NOT NULL, error TEXT)""",
        "CREATE INDEX transfer_queue_by_state ON transfer_queue (state, id)",
    ),
}
assert max(MIGRATIONS) == SCHEMA_VERSION
