"""The TTL cache of remote stat and walk answers, and what invalidates it."""

from __future__ import annotations

import time

import pytest

from streamflow_data import ExecutionLocation, FileKind, FileStat, WalkEntry
from streamflow_data.connectors.metadata import MetadataCache

HOST = ExecutionLocation("ssh", "a")
OTHER = ExecutionLocation("ssh", "b")
STAT = FileStat(FileKind.FILE, 3, 0o644, 0)
DIR = FileStat(FileKind.DIRECTORY, 0, 0o755, 0)


def _filled() -> MetadataCache:
    cache = MetadataCache(ttl=60)
    for location in (HOST, OTHER):
        for path in ("/d", "/d/sub", "/d/sub/f", "/d/sibling", "/e"):
            cache.keep_stat(location, path, False, STAT)
            cache.keep_stat(location, path, True, STAT)
        cache.keep_walk(location, "/d", [WalkEntry("sub", DIR), WalkEntry("sub/f", STAT)])
        cache.keep_walk(location, "/d/sub", [WalkEntry("f", STAT)])
        cache.keep_walk(location, "/e", [])
    return cache


@pytest.mark.parametrize("batch", [0, 100], ids=["one path", "a batch larger than the cache"])
def test_a_change_forgets_the_path_its_parent_and_the_walks_above(batch: int) -> None:
    """Either the changed paths are looked up, or (when they outnumber the entries) the
    entries are looked through."""
    cache = _filled()
    cache.changed(HOST, ["/d/sub/f", *(f"/x/{index}" for index in range(batch))])
    assert cache.stat(HOST, "/d/sub/f", False) is None
    assert cache.stat(HOST, "/d/sub/f", True) is None
    assert cache.stat(HOST, "/d/sub", False) is None  # its times changed
    assert cache.walk(HOST, "/d/sub") is None
    assert cache.walk(HOST, "/d") is None
    assert cache.stat(HOST, "/d/sibling", False) == STAT
    assert cache.stat(HOST, "/d", False) == STAT
    assert cache.walk(HOST, "/e") == ()
    assert cache.stat(OTHER, "/d/sub/f", False) == STAT  # another location
    assert cache.walk(OTHER, "/d") is not None


def test_a_removed_tree_forgets_the_whole_location() -> None:
    cache = _filled()
    cache.changed_tree(HOST)
    assert cache.stat(HOST, "/e", False) is None and cache.walk(HOST, "/e") is None
    assert cache.stat(OTHER, "/e", False) == STAT and cache.walk(OTHER, "/e") == ()


def test_answers_expire_and_a_zero_ttl_keeps_nothing() -> None:
    cache = MetadataCache(ttl=0.05)
    cache.keep_stat(HOST, "/f", False, STAT)
    assert cache.stat(HOST, "/f", False) == STAT
    time.sleep(0.1)
    assert cache.stat(HOST, "/f", False) is None
    disabled = MetadataCache(ttl=0)
    disabled.keep_stat(HOST, "/f", False, STAT)
    disabled.keep_walk(HOST, "/", [])
    assert disabled.stat(HOST, "/f", False) is None and disabled.walk(HOST, "/") is None


def test_huge_walks_are_not_kept() -> None:
    cache = MetadataCache(ttl=60, max_walk_entries=2)
    cache.keep_walk(HOST, "/big", [WalkEntry(str(n), STAT) for n in range(3)])
    cache.keep_walk(HOST, "/small", [WalkEntry("1", STAT)])
    assert cache.walk(HOST, "/big") is None and cache.walk(HOST, "/small") is not None
