"""Recent ``stat`` and ``walk`` results of a remote connector, kept for a few seconds.

Each of those costs a remote round trip, and a transfer asks the same questions several
times (planning, existence checks, resuming). A connector keeps the answers in
``cachetools`` TTL caches and drops them itself whenever it changes the storage: a
written, copied, linked or re-timed path loses its own entries, its parent's and every
walk of a directory above it; a removed or renamed tree clears the location. Changes made
by others on the storage are seen once the entries expire (``ttl`` seconds).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

import cachetools

from streamflow_data.connectors.base import FileStat, WalkEntry
from streamflow_data.model import ExecutionLocation

__all__ = ["MetadataCache"]

_Key = tuple[str, str, str]


def _key(location: ExecutionLocation, path: str) -> _Key:
    return (location.deployment, location.name, path)


def _ancestors(path: str) -> list[str]:
    """``path`` and the directories above it, deepest first."""
    found = [path]
    while path not in ("/", ""):
        path = path.rpartition("/")[0] or "/"
        found.append(path)
    return found


class MetadataCache:
    """``stat`` and ``walk`` answers for ``ttl`` seconds (``ttl`` 0 keeps nothing).

    Walks of more than ``max_walk_entries`` entries are not kept: a huge tree is better
    listed again than held in memory.
    """

    def __init__(self, ttl: float, maxsize: int = 65_536, max_walk_entries: int = 100_000):
        self.enabled = ttl > 0
        self._stats: cachetools.TTLCache[tuple[_Key, bool], FileStat] = cachetools.TTLCache(
            maxsize, max(ttl, 1e-9)
        )
        self._walks: cachetools.TTLCache[_Key, tuple[WalkEntry, ...]] = cachetools.TTLCache(
            256, max(ttl, 1e-9)
        )
        self._max_walk_entries = max_walk_entries

    def stat(self, location: ExecutionLocation, path: str, follow: bool) -> FileStat | None:
        """A kept ``stat`` answer, or None."""
        return self._stats.get((_key(location, path), follow)) if self.enabled else None

    def keep_stat(
        self, location: ExecutionLocation, path: str, follow: bool, stat: FileStat
    ) -> None:
        """Remember a ``stat`` answer."""
        if self.enabled:
            self._stats[(_key(location, path), follow)] = stat

    async def stated(
        self,
        location: ExecutionLocation,
        path: str,
        follow: bool,
        ask: Callable[[], Awaitable[FileStat]],
    ) -> FileStat:
        """The kept ``stat`` answer, or ``ask()``'s, then kept."""
        kept = self.stat(location, path, follow)
        if kept is None:
            kept = await ask()
            self.keep_stat(location, path, follow, kept)
        return kept

    async def walked(
        self,
        location: ExecutionLocation,
        path: str,
        ask: Callable[[], Awaitable[Sequence[WalkEntry]]],
    ) -> Sequence[WalkEntry]:
        """The kept ``walk`` listing, or ``ask()``'s, then kept."""
        kept = self.walk(location, path)
        if kept is None:
            kept = tuple(await ask())
            self.keep_walk(location, path, kept)
        return kept

    def walk(self, location: ExecutionLocation, path: str) -> tuple[WalkEntry, ...] | None:
        """A kept ``walk`` listing, or None."""
        return self._walks.get(_key(location, path)) if self.enabled else None

    def keep_walk(
        self, location: ExecutionLocation, path: str, entries: Sequence[WalkEntry]
    ) -> None:
        """Remember a complete ``walk`` listing (unless too long)."""
        if self.enabled and len(entries) <= self._max_walk_entries:
            self._walks[_key(location, path)] = tuple(entries)

    def changed(
        self, location: ExecutionLocation, paths: Sequence[str], *, parents: bool = True
    ) -> None:
        """``paths`` were written, created, linked or given new metadata.

        ``parents`` says whether that changes their directories' own metadata (it does
        on POSIX storage, where a directory's time follows its entries; not on S3).
        """
        if not self.enabled:
            return
        stats: set[str] = set()
        walks: set[str] = set()
        for path in paths:
            parent = path.rpartition("/")[0] or "/"
            stats.add(path)
            walks.add(path)
            if parents:
                stats.add(parent)
            if parent not in walks:  # every walk above lists the path
                walks.update(_ancestors(parent))
        # Whichever is shorter is looked through: the kept entries or the changed paths
        # (a thousand-file batch against a cache that holds a few entries).
        place = (location.deployment, location.name)
        if len(self._stats) < 2 * len(stats):
            doomed = [key for key in self._stats if key[0][:2] == place and key[0][2] in stats]
        else:
            keys = [_key(location, path) for path in stats]
            doomed = [(key, follow) for key in keys for follow in (False, True)]
        for stat_key in doomed:
            self._stats.pop(stat_key, None)
        if len(self._walks) < len(walks):
            gone = [key for key in self._walks if key[:2] == place and key[2] in walks]
        else:
            gone = [_key(location, path) for path in walks]
        for walk_key in gone:
            self._walks.pop(walk_key, None)

    def changed_tree(self, location: ExecutionLocation) -> None:
        """A tree of ``location`` was removed or moved: forget the whole location."""
        if not self.enabled:
            return
        place = (location.deployment, location.name)
        for stat_key in [k for k in self._stats if k[0][:2] == place]:
            self._stats.pop(stat_key, None)
        for walk_key in [k for k in self._walks if k[:2] == place]:
            self._walks.pop(walk_key, None)
