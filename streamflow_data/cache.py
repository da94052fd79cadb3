"""The local replica cache: what the manager fetched to the local node, within a budget.

Replicas that transfers from other locations write to a local location count against a
byte budget. Before such a copy starts, its size is reserved; when the reservation does
not fit, the least recently used replicas are evicted (deleted from the disk and
invalidated in the replica graph), oldest first. Replicas pinned by the caller or in use
as a transfer source are out of the LRU order while so, and never evicted. When nothing
more can be evicted, the copy waits for room or fails with
:class:`~streamflow_data.errors.CacheFullError`, as configured: the hard limit that
slows writers down in CloudFusion's caching store.

The LRU order and the byte count of unpinned replicas are a ``cachetools.LRUCache``
(never full by itself: eviction is decided here, because it needs I/O).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import time
from collections.abc import Awaitable, Callable, Iterator

import cachetools

from streamflow_data.config import CacheSettings
from streamflow_data.errors import CacheFullError
from streamflow_data.transfer.stats import CacheStatistics

__all__ = ["CacheKey", "ReplicaCache", "Reservation"]

logger = logging.getLogger(__name__)

CacheKey = tuple[str, str, str]
"""(deployment, location name, path) of a cached replica."""


class Reservation:
    """Room set aside for one copy in flight."""

    __slots__ = ("key", "size")

    def __init__(self, key: CacheKey, size: int) -> None:
        self.key = key
        self.size = size


class ReplicaCache:
    """The budget of fetched local replicas, LRU eviction and pins.

    ``evict`` deletes one replica and invalidates it; it is called with no reservation
    pending on that replica and must not raise for a replica already gone.
    """

    def __init__(
        self,
        settings: CacheSettings,
        evict: Callable[[CacheKey], Awaitable[None]],
        stats: CacheStatistics,
    ) -> None:
        self.settings = settings
        self._evict = evict
        self.stats = stats
        stats.budget = settings.budget
        self._lru: cachetools.LRUCache[CacheKey, int] = cachetools.LRUCache(
            maxsize=sys.maxsize, getsizeof=lambda size: size
        )
        self._pinned: dict[CacheKey, tuple[int, int]] = {}  # key -> (size, pin count)
        self._reserved = 0
        self._room = asyncio.Event()
        """Set whenever room may have been freed; waiting copies then look again."""

    @property
    def used(self) -> int:
        """Bytes held by cached replicas and reserved for copies in flight."""
        pinned = sum(size for size, _ in self._pinned.values())
        return int(self._lru.currsize) + pinned + self._reserved

    def __contains__(self, key: CacheKey) -> bool:
        return key in self._lru or key in self._pinned

    async def reserve(self, key: CacheKey, size: int) -> Reservation:
        """Make room for a copy of ``size`` bytes to ``key``, evicting as needed."""
        budget = self.settings.budget
        if size > budget:
            raise CacheFullError(
                f"a copy of {size} bytes to {key[0]}/{key[1]}:{key[2]} is larger than the "
                f"whole cache budget ({budget} bytes)"
            )
        deadline = time.monotonic() + self.settings.wait_timeout
        while self.used + size > budget:
            if self._lru:
                victim, victim_size = self._lru.popitem()
                self.stats.evictions += 1
                self.stats.bytes_evicted += victim_size
                try:
                    await self._evict(victim)
                except Exception:
                    logger.warning("could not evict %s from the cache", victim, exc_info=True)
                continue
            remaining = deadline - time.monotonic()
            if self.settings.when_full == "fail" or remaining <= 0:
                raise CacheFullError(
                    f"a copy of {size} bytes to {key[0]}/{key[1]}:{key[2]} does not fit the "
                    f"cache budget ({budget} bytes): {self.used} bytes are pinned, in use or "
                    "reserved"
                )
            self._room.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._room.wait(), remaining)
        self._reserved += size
        self.stats.misses += 1
        self._update()
        return Reservation(key, size)

    def admit(self, reservation: Reservation) -> None:
        """The copy completed: its replica is cached, most recently used."""
        self._reserved -= reservation.size
        self.forget(reservation.key)
        self._lru[reservation.key] = reservation.size
        self._update()

    def cancel(self, reservation: Reservation) -> None:
        """The copy failed: give its room back."""
        self._reserved -= reservation.size
        self._freed()

    def touch(self, key: CacheKey) -> None:
        """A cached replica was used (a hit); unknown keys are ignored."""
        if key in self._lru:
            self._lru[key] = self._lru[key]  # most recently used now
            self.stats.hits += 1
        elif key in self._pinned:
            self.stats.hits += 1

    def pin(self, key: CacheKey) -> bool:
        """Keep a cached replica from eviction until :meth:`unpin`; False if not cached."""
        if key in self._pinned:
            size, count = self._pinned[key]
            self._pinned[key] = (size, count + 1)
            return True
        if key not in self._lru:
            return False
        self._pinned[key] = (self._lru.pop(key), 1)
        return True

    @contextlib.contextmanager
    def in_use(self, key: CacheKey) -> Iterator[None]:
        """Pin ``key`` while the body reads it, then count the use (if it is cached)."""
        pinned = self.pin(key)
        try:
            yield
        finally:
            if pinned:
                self.touch(key)
                self.unpin(key)

    def unpin(self, key: CacheKey) -> None:
        """Undo one :meth:`pin`; at the last one the replica is evictable again."""
        found = self._pinned.get(key)
        if found is None:
            return
        size, count = found
        if count > 1:
            self._pinned[key] = (size, count - 1)
            return
        del self._pinned[key]
        self._lru[key] = size
        self._freed()

    def forget(self, key: CacheKey) -> None:
        """The replica is gone (invalidated, overwritten): it no longer counts."""
        self._lru.pop(key, None)
        self._pinned.pop(key, None)
        self._freed()

    def _freed(self) -> None:
        self._update()
        self._room.set()

    def _update(self) -> None:
        self.stats.bytes_used = self.used
