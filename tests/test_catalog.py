"""The catalog file: the replica graph survives a restart; schema, damage and lock errors."""

from __future__ import annotations

import asyncio
import os
import random
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from streamflow_data import (
    CatalogError,
    CatalogSettings,
    DataType,
    DefaultDataManager,
    DefaultSourcePolicy,
    ExecutionLocation,
    StreamFlowDataError,
)
from streamflow_data.catalog import SCHEMA_VERSION, Catalog
from streamflow_data.catalog.schema import MIGRATIONS as _MIGRATIONS
from streamflow_data.changes import GraphChange, Registered
from tests.helpers import Hosts

A = ExecutionLocation("cluster", "node-a", hostname="a.example")
B = ExecutionLocation("cluster", "node-b")
S3 = ExecutionLocation("bucket", "data")


def _view(manager: DefaultDataManager, paths: list[str]) -> dict[str, list[str]]:
    """What queries answer for ``paths``: replicas with their types, in query order."""
    return {
        path: [
            f"{r.location}|{r.location.local}|{r.location.hostname}|{r.path}|{r.relpath}|"
            f"{r.data_type.name}"
            for r in manager.get_data_locations(path)
        ]
        for path in paths
    }


def _build(manager: DefaultDataManager) -> list[str]:
    """A graph with every kind of change; returns the paths to compare."""
    paths = []
    for index in range(50):
        path = f"/data/run/{index % 5}/file{index}"
        paths.append(path)
        on_a = manager.register_path(A, path, relpath=f"file{index}")
        on_b = manager.register_path(B, f"/scratch/{index}")
        manager.register_relation(on_a, on_b)
        if index % 7 == 0:
            link = manager.register_path(A, f"/links/{index}", data_type=DataType.SYMBOLIC_LINK)
            manager.register_relation(on_a, link)
            paths.append(f"/links/{index}")
        paths.append(f"/scratch/{index}")
    manager.register_path(S3, "/bucket/object")
    manager.invalidate_location(A, "/data/run/3")  # a subtree, and the links into it
    manager.invalidate_location(B, "/scratch/4")
    manager.register_path(A, "/data/run/3/file3")  # registered again after invalidation
    # A directory registered whole answers for the paths inside it, but its holes.
    manager.register_path(B, "/results")
    manager.register_path(A, "/results/log/out.txt")  # /results/log: a parent of A only
    manager.invalidate_location(B, "/results/log/bad")
    manager.register_path(A, "/data/run")  # a parent directory registered itself
    inside = ["/results/log/out.txt", "/results/log/bad", "/results/x", "/data/run/9/new"]
    return [*paths, "/data", "/data/run", "/bucket/object", "/data/run/3", *inside]


async def test_replicas_relations_links_and_invalidations_survive_a_restart(
    catalog_path: str,
) -> None:
    catalog = catalog_path
    async with DefaultDataManager(catalog=catalog) as first:
        paths = _build(first)
        before = _view(first, paths)
        sources = {p: await first.get_source_location(p, "cluster") for p in paths}
    async with DefaultDataManager(catalog=catalog) as second:
        assert _view(second, paths) == before
        for path, source in sources.items():
            again = await second.get_source_location(path, "cluster")
            assert (again is None) == (source is None)
            if source is not None and again is not None:
                assert (again.location, again.path) == (source.location, source.path)
        # links into the invalidated subtree were invalidated in the replay too
        assert second.get_data_locations("/links/3") == []
        assert len(second.mapper) == len(first.mapper)


async def test_a_grown_log_is_compacted_and_replays_the_same(catalog_path: str) -> None:
    catalog = catalog_path
    async with DefaultDataManager(catalog=catalog) as first:
        for round_number in range(4):
            for index in range(600):
                first.register_path(A, f"/churn/{index}")
            if round_number < 3:
                first.invalidate_location(A, "/churn")
        paths = _build(first)
        before = _view(first, paths)
    rows_before = await _count(catalog)
    async with DefaultDataManager(catalog=catalog) as second:
        assert _view(second, paths) == before
    rows_after = await _count(catalog)
    assert rows_after < rows_before / 2
    async with DefaultDataManager(catalog=catalog) as third:
        assert _view(third, paths) == before
        assert len(third.get_data_locations("/churn/599")) == 1


async def _count(catalog: str) -> int:
    """The changes the replica log holds (a row of grouped paths counts each path)."""
    opened = await Catalog.open(CatalogSettings(path=catalog))
    try:
        rows = await opened.database.fetch_all("SELECT names FROM replica_log")
    finally:
        await opened.close()
    return sum(1 if names is None else len(bytes(names).split(b"\0")) for (names,) in rows)


async def test_registering_before_the_catalog_is_open_is_refused(catalog_path: str) -> None:
    manager = DefaultDataManager(catalog=catalog_path)
    with pytest.raises(StreamFlowDataError, match="not open yet"):
        manager.register_path(A, "/x")
    assert manager.get_data_locations("/x") == []  # refused before any change
    await manager.open()
    manager.register_path(A, "/x")
    await manager.close()


async def test_memory_catalog_works_and_keeps_nothing() -> None:
    async with DefaultDataManager(catalog=":memory:") as manager:
        manager.register_path(A, "/x")
        await manager.flush()
        assert len(manager.get_data_locations("/x")) == 1
    async with DefaultDataManager(catalog=":memory:") as manager:
        assert manager.get_data_locations("/x") == []


async def test_an_older_schema_is_upgraded_keeping_its_data(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as connection:  # what version 1 wrote
        connection.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
        connection.execute("INSERT INTO schema_version VALUES (1)")
        for statement in _MIGRATIONS[1]:
            connection.execute(statement)
        connection.execute(
            "INSERT INTO locations VALUES ('cluster\x1fnode-b', 'cluster', 'node-b', 0, NULL)"
        )
        connection.execute(
            "INSERT INTO replica_log (op, location, path) VALUES (1, 'cluster\x1fnode-b', '/kept')"
        )
    async with DefaultDataManager(catalog=str(path)) as manager:
        assert [r.path for r in manager.get_data_locations("/kept")] == ["/kept"]
        assert await manager.transfers() == []  # the journal tables exist now
    with sqlite3.connect(path) as connection:
        assert connection.execute("SELECT version FROM schema_version").fetchone() == (
            SCHEMA_VERSION,
        )


async def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "new.sqlite"
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
        connection.execute("INSERT INTO schema_version VALUES (99)")
    with pytest.raises(CatalogError, match=r"newer streamflow-data \(schema 99"):
        await DefaultDataManager(catalog=str(path)).open()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"this is not sqlite at all" * 200, "not a SQLite database, or damaged"),
        (None, "not a streamflow-data catalog"),
    ],
    ids=["garbage", "foreign-sqlite"],
)
async def test_files_that_are_not_catalogs_are_refused(
    tmp_path: Path, content: bytes | None, message: str
) -> None:
    path = tmp_path / "bad.sqlite"
    if content is None:
        with sqlite3.connect(path) as connection:
            connection.execute("CREATE TABLE something (x)")
    else:
        path.write_bytes(content)
    with pytest.raises(CatalogError, match=message) as caught:
        await DefaultDataManager(catalog=str(path)).open()
    assert str(path) in str(caught.value)


async def test_a_damaged_catalog_page_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "damaged.sqlite"
    async with DefaultDataManager(catalog=str(path)) as manager:
        for index in range(3000):  # with relpaths: one row each, many b-tree pages
            manager.register_path(A, f"/many/{index:05d}", relpath=f"name-{index}")
    data = bytearray(path.read_bytes())
    for offset in range(8192, len(data), 4096):  # the page headers after the first two
        data[offset : offset + 12] = b"\xff" * 12
    path.write_bytes(bytes(data))
    with pytest.raises(CatalogError, match="damaged"):
        await DefaultDataManager(catalog=str(path)).open()


async def test_a_catalog_locked_by_another_process_is_reported(tmp_path: Path) -> None:
    path = str(tmp_path / "locked.sqlite")
    await (await Catalog.open(CatalogSettings(path=path))).close()
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        settings = CatalogSettings(path=path, busy_timeout=0.2)
        with pytest.raises(CatalogError, match=r"locked by another process for more than 0\.2 s"):
            await DefaultDataManager(catalog=settings).open()
    finally:
        holder.execute("ROLLBACK")
        holder.close()


async def test_a_replica_reaches_the_catalog_only_once_complete(
    tmp_path: Path, catalog_path: str
) -> None:
    hosts = Hosts(tmp_path / "hosts")
    source = hosts.add("source")
    destination = hosts.add("dest", stall_writes=True)
    hosts.path("source", "/data").write_bytes(os.urandom(9_000_000))
    catalog = catalog_path
    async with DefaultDataManager(dict(hosts.connectors), catalog=catalog) as manager:
        manager.register_path(source, "/data")
        task = asyncio.create_task(manager.transfer_data(source, "/data", [destination], "/copy"))
        await hosts.connectors["dest"].write_started.wait()
        await manager.flush()
        assert await _persisted(catalog, "/copy") == []
        hosts.connectors["dest"].release.set()
        await task
        await manager.flush()
        # the copy, and through its relation the source it was read from
        assert await _persisted(catalog, "/copy") == [destination, source]


async def test_a_failed_copy_never_reaches_the_catalog(tmp_path: Path, catalog_path: str) -> None:
    hosts = Hosts(tmp_path / "hosts")
    source = hosts.add("source")
    destination = hosts.add("dest", fail_write_number=2)
    hosts.path("source", "/data").write_bytes(os.urandom(9_000_000))
    catalog = catalog_path
    async with DefaultDataManager(dict(hosts.connectors), catalog=catalog) as manager:
        manager.register_path(source, "/data")
        with pytest.raises(StreamFlowDataError):
            await manager.transfer_data(source, "/data", [destination], "/copy")
    assert await _persisted(catalog, "/copy") == []


async def _persisted(catalog: str, path: str) -> list[ExecutionLocation]:
    """The locations of ``path`` a manager opening the catalog now would see."""
    async with DefaultDataManager(catalog=catalog) as reader:
        return [replica.location for replica in reader.get_data_locations(path)]


@pytest.mark.parametrize("seed", range(8))
async def test_random_changes_replay_to_the_same_graph(catalog_path: str, seed: int) -> None:
    """Registrations (plain ones are grouped when written), links, relpaths, relations,
    invalidations and re-registrations, in random order, come back exactly."""
    rng = random.Random(seed)
    paths = [f"/r/{a}/{b}" for a in "xyz" for b in "pq"] + ["/r/x", "/r/y", "/r", "/r/x/p/in"]
    locations = [A, B, S3]
    catalog = catalog_path
    policy = DefaultSourcePolicy(random.Random(seed))
    async with DefaultDataManager(catalog=catalog, policy=policy) as first:
        for index in range(1500):  # enough to compact the log when it is next opened
            first.register_path(A, f"/churn/{index}")
        first.invalidate_location(A, "/churn")
        for step in range(300):
            location, path = rng.choice(locations), rng.choice(paths)
            action = rng.random()
            if action < 0.5:
                first.register_path(location, path)
            elif action < 0.6:
                first.register_path(location, path, data_type=DataType.SYMBOLIC_LINK)
            elif action < 0.7:
                first.register_path(location, path, relpath=f"rel-{step}")
            elif action < 0.85:
                one = first.get_data_locations(path)
                other = first.get_data_locations(rng.choice(paths))
                if one and other:
                    first.register_relation(rng.choice(one), rng.choice(other))
            else:
                first.invalidate_location(location, path)
            if step % 37 == 0:
                await first.flush()  # batches end anywhere
        before = _view(first, paths)
        sources = [await first.get_source_location(p, "cluster") for p in paths]
    policy = DefaultSourcePolicy(random.Random(seed))  # the same random choices again
    async with DefaultDataManager(catalog=catalog, policy=policy) as second:
        assert _view(second, paths) == before
        again = [await second.get_source_location(p, "cluster") for p in paths]
        assert [(s.location, s.path) if s else None for s in again] == [
            (s.location, s.path) if s else None for s in sources
        ]
    async with DefaultDataManager(catalog=catalog) as third:  # from the compacted log
        assert _view(third, paths) == before


async def test_a_catalog_failure_at_the_end_of_a_copy_releases_everything(
    tmp_path: Path, catalog_path: str
) -> None:
    """If the catalog refuses the outcome, the error is raised, and nothing stays claimed:
    waiting transfers, locks and the replica's waiters are all released."""
    (tmp_path / "src").write_text("data")
    catalog = CatalogSettings(path=catalog_path, lock_policy="fail")
    async with DefaultDataManager(catalog=catalog) as manager:
        local = manager.locations()[0]
        manager.register_path(local, str(tmp_path / "src"))
        log = manager.catalog.replicas if manager.catalog else None
        assert log is not None

        def refuse(*args: object) -> None:
            raise CatalogError(catalog.path, "injected: cannot write")

        log.registered = refuse  # type: ignore[method-assign,assignment]
        with pytest.raises(CatalogError, match="injected"):
            await manager.transfer_data(
                local, str(tmp_path / "src"), [local], str(tmp_path / "a"), writable=True
            )
        del log.registered
        async with DefaultDataManager(catalog=catalog) as other:  # the lock is free again
            here = other.locations()[0]
            other.register_path(here, str(tmp_path / "src"))
            await other.transfer_data(
                here, str(tmp_path / "src"), [here], str(tmp_path / "a"), writable=True
            )
        await asyncio.wait_for(  # and this manager's own claim on it too
            manager.transfer_data(
                local, str(tmp_path / "src"), [local], str(tmp_path / "a"), writable=True
            ),
            timeout=10,
        )


async def _eventually(condition: Callable[[], bool]) -> None:
    for _ in range(200):  # bounded: 10 s
        if condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the change never came")


async def test_managers_sharing_a_catalog_see_each_others_changes(catalog_path: str) -> None:
    settings = CatalogSettings(path=catalog_path, follow_interval=0.05)
    async with (
        DefaultDataManager(catalog=settings) as one,
        DefaultDataManager(catalog=settings) as two,
    ):
        told: list[GraphChange] = []
        two.add_observer(told.append)  # a service over the second manager hears them too
        paths = _build(one)
        await one.flush()
        await _eventually(lambda: _view(two, paths) == _view(one, paths))
        assert any(isinstance(c, Registered) and c.path == "/bucket/object" for c in told)
        two.invalidate_location(B, "/scratch/7")
        two.register_path(S3, "/bucket/late")
        await two.flush()
        await _eventually(lambda: bool(one.get_data_locations("/bucket/late")))
        assert _view(one, paths) == _view(two, paths)
        assert one.get_data_locations("/scratch/7") == []
    async with DefaultDataManager(catalog=settings) as three:  # and the log replays the same
        assert _view(three, paths) == _view(two, paths)
