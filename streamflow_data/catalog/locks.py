"""Destination locks shared through the catalog file by every manager that opens it.

Before a transfer writes a destination path, its manager takes a lock on (location,
path) in the ``locks`` table; a path conflicts with itself, with the paths inside it and
with the directories that contain it. All the destinations of one transfer are locked in
one transaction, all or none, so two transfers never hold half of each other's locks.

A holder refreshes its locks' heartbeat while it holds them. A lock whose heartbeat is
older than ``stale_lock_after`` belongs to a process that died (``kill -9``, a crash, a
lost node) and is taken over; so is, at once, a lock whose holder ran on this host under
a process id that no longer exists. Locks of the same manager never conflict: one manager
coordinates its own transfers in memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Sequence

from streamflow_data.catalog.database import Database
from streamflow_data.catalog.replicas import location_key
from streamflow_data.config import CatalogSettings
from streamflow_data.errors import CatalogError, TransferLockedError
from streamflow_data.model import ExecutionLocation

__all__ = ["TransferLocks"]

logger = logging.getLogger(__name__)

_Target = tuple[ExecutionLocation, str]


def _conflicts(first: str, second: str) -> bool:
    """Whether writing one path touches the other (equal, or one inside the other)."""
    shorter, longer = sorted((first, second), key=len)
    return longer == shorter or longer.startswith(shorter.rstrip("/") + "/")


class TransferLocks:
    """The destination locks of one data manager."""

    def __init__(self, database: Database, settings: CatalogSettings) -> None:
        self._database = database
        self._settings = settings
        self.owner = os.urandom(16).hex()
        """This manager's identity in the locks table."""
        self._host, self._pid = socket.gethostname(), os.getpid()
        self.holder = f"process {self._pid} on {self._host}"
        """How other managers name this one in their errors."""
        self._held: dict[tuple[str, str], int] = {}
        self._heartbeat: asyncio.Task[None] | None = None

    async def acquire(self, targets: Sequence[_Target]) -> None:
        """Lock every (location, path) of ``targets``, waiting for other managers or
        failing with :class:`TransferLockedError`, as configured."""
        settings = self._settings
        deadline = time.monotonic() + settings.lock_timeout
        delay = 0.05
        while True:
            blocker = await self._try(targets)
            if blocker is None:
                break
            location, path, holder = blocker
            if settings.lock_policy == "fail" or time.monotonic() + delay > deadline:
                raise TransferLockedError(location, path, holder)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)
        for location, path in targets:
            key = (location_key(location), path)
            self._held[key] = self._held.get(key, 0) + 1
        if self._heartbeat is None:
            self._heartbeat = asyncio.create_task(self._refresh(), name="catalog lock heartbeat")

    async def _try(self, targets: Sequence[_Target]) -> tuple[ExecutionLocation, str, str] | None:
        """Take all the locks in one transaction, or none; returns what blocks them."""
        now = time.time()
        stale_before = now - self._settings.stale_lock_after
        async with self._database.transaction() as connection:
            for location, path in targets:
                key = location_key(location)
                rows = await connection.execute(
                    "SELECT path, owner, holder, host, pid, heartbeat FROM locks "
                    "WHERE location = ?",
                    (key,),
                )
                for held_path, owner, holder, host, pid, heartbeat in rows:
                    if owner == self.owner or not _conflicts(path, held_path):
                        continue
                    if heartbeat >= stale_before and not self._dead(host, pid):
                        return location, held_path, holder
                    await connection.execute(  # its holder died: take it over
                        "DELETE FROM locks WHERE location = ? AND path = ?", (key, held_path)
                    )
            await connection.executemany(
                "INSERT INTO locks (location, path, owner, holder, host, pid, heartbeat) "
                "VALUES (?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (location, path) DO UPDATE SET heartbeat = excluded.heartbeat",
                [
                    (location_key(loc), path, self.owner, self.holder, self._host, self._pid, now)
                    for loc, path in targets
                ],
            )
        return None

    def _dead(self, host: str, pid: int) -> bool:
        """Whether a holder ran on this host as a process that is gone."""
        if host != self._host:
            return False
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:  # alive, another user's
            return False
        return False

    async def release(self, targets: Sequence[_Target]) -> None:
        """Give the locks of ``targets`` back (each as many times as it was taken)."""
        freed = []
        for location, path in targets:
            key = (location_key(location), path)
            count = self._held.get(key, 0) - 1
            if count > 0:
                self._held[key] = count
            elif count == 0:
                del self._held[key]
                freed.append((*key, self.owner))
        if freed:
            async with self._database.transaction() as connection:
                await connection.executemany(
                    "DELETE FROM locks WHERE location = ? AND path = ? AND owner = ?", freed
                )

    async def _refresh(self) -> None:
        interval = self._settings.stale_lock_after / 3
        while True:
            await asyncio.sleep(interval)
            if not self._held:
                continue
            try:
                async with self._database.transaction() as connection:
                    await connection.execute(
                        "UPDATE locks SET heartbeat = ? WHERE owner = ?", (time.time(), self.owner)
                    )
            except CatalogError:  # busy for a moment: the next beat comes well before stale
                logger.warning("could not refresh the transfer locks", exc_info=True)

    async def close(self) -> None:
        """Stop refreshing and drop every lock still held."""
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._heartbeat
        if self._held:
            self._held.clear()
            async with self._database.transaction() as connection:
                await connection.execute("DELETE FROM locks WHERE owner = ?", (self.owner,))
