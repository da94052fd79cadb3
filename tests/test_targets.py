"""``transfer_to``: one source, read once, to destinations that each have their own path."""

from __future__ import annotations

import asyncio
import csv
import io
import os
import sqlite3
from pathlib import Path

import pytest

from streamflow_data import (
    DefaultDataManager,
    InvalidPathError,
    TransferError,
    TransferSettings,
)
from streamflow_data.catalog.schema import MIGRATIONS as _MIGRATIONS
from tests.helpers import (
    TREE_BYTES,
    Hosts,
    LastSnapshot,
    copy_slowly,
    leftovers,
    make_tree,
    snapshot,
    wait_for_progress,
)

MiB = 1024 * 1024
_EIGHT_MIB_CHUNKS = TransferSettings(chunk_size=8 * MiB, block_size=1 * MiB)


async def test_each_target_gets_its_own_path_and_the_source_is_read_once(hosts: Hosts) -> None:
    source = hosts.add("src")
    await asyncio.to_thread(make_tree, hosts.path("src", "/tree"))
    a, b = hosts.add("a"), hosts.add("b")
    targets = [(a, "/one"), (a, "/deep/two"), (b, "/three")]
    finished = LastSnapshot()
    async with DefaultDataManager(hosts.connectors, listeners=[finished]) as manager:
        manager.register_path(source, "/tree")
        await manager.transfer_to(source, "/tree", targets)
        replicas = {(r.location.deployment, r.path) for r in manager.get_data_locations("/tree")}
    assert hosts.connectors["src"].bytes_read == TREE_BYTES
    expected = await asyncio.to_thread(snapshot, hosts.path("src", "/tree"))
    for location, path in targets:
        found = await asyncio.to_thread(snapshot, hosts.path(location.deployment, path))
        assert found == expected, (location, path)
    # Not writable: each copy joins the source's replica set.
    assert replicas == {("src", "/tree"), ("a", "/one"), ("a", "/deep/two"), ("b", "/three")}
    assert finished.count == 1  # one transfer for every target
    assert finished.last is not None
    assert sorted((d.location.deployment, d.path) for d in finished.last.destinations) == [
        ("a", "/deep/two"),
        ("a", "/one"),
        ("b", "/three"),
    ]
    assert all(d.bytes_done == TREE_BYTES for d in finished.last.destinations)


@pytest.mark.parametrize("paths", [("/x", "/x/y"), ("/x/y", "/x"), ("/tree/inside", "/elsewhere")])
async def test_targets_inside_each_other_or_the_source_are_refused(
    hosts: Hosts, paths: tuple[str, str]
) -> None:
    source = hosts.add("src")
    await asyncio.to_thread(make_tree, hosts.path("src", "/tree"))
    async with DefaultDataManager(hosts.connectors) as manager:
        manager.register_path(source, "/tree")
        with pytest.raises(InvalidPathError, match="inside"):
            await manager.transfer_to(source, "/tree", [(source, path) for path in paths])
        assert manager.get_data_locations("/x") == manager.get_data_locations("/elsewhere") == []
    assert sorted(os.listdir(hosts.path("src", "/"))) == ["tree"]  # nothing written


async def test_the_same_path_on_two_locations_and_a_repeated_target_are_fine(
    hosts: Hosts,
) -> None:
    source = hosts.add("src")
    data = os.urandom(100_000)
    await asyncio.to_thread(hosts.path("src", "/f").write_bytes, data)
    a, b = hosts.add("a"), hosts.add("b")
    async with DefaultDataManager(hosts.connectors) as manager:
        manager.register_path(source, "/f")
        await manager.transfer_to(source, "/f", [(a, "/f"), (b, "/f"), (a, "/f/../f")])
    assert hosts.connectors["src"].bytes_read == len(data)
    for name in "ab":
        assert await asyncio.to_thread(hosts.path(name, "/f").read_bytes) == data


async def test_a_target_that_fails_is_reported_by_its_path_and_the_others_land(
    hosts: Hosts,
) -> None:
    source = hosts.add("src")
    data = os.urandom(50_000)
    await asyncio.to_thread(hosts.path("src", "/f").write_bytes, data)
    a = hosts.add("a")
    await asyncio.to_thread(hosts.path("a", "/plain").write_text, "a file, not a directory")
    async with DefaultDataManager(hosts.connectors) as manager:
        manager.register_path(source, "/f")
        with pytest.raises(TransferError) as raised:
            await manager.transfer_to(
                source, "/f", [(a, "/plain/below"), (a, "/ok")], writable=True
            )
        [failure] = raised.value.failures
        assert (failure.location, failure.path) == (a, "/plain/below")
        assert [r.path for r in manager.get_data_locations("/ok")] == ["/ok"]
        assert manager.get_data_locations("/plain/below") == []
    assert await asyncio.to_thread(hosts.path("a", "/ok").read_bytes) == data


async def _same_tree(first: Path, second: Path) -> bool:
    return await asyncio.to_thread(snapshot, first) == await asyncio.to_thread(snapshot, second)


# -- the journal ------------------------------------------------------------------------------


async def test_the_journal_records_each_target_and_a_rerun_moves_nothing(tmp_path: Path) -> None:
    src = tmp_path / "tree"
    await asyncio.to_thread(make_tree, src)
    catalog = str(tmp_path / "catalog.sqlite")
    one, two = tmp_path / "one", tmp_path / "two"
    await copy_slowly(catalog, src, [two, one])
    again = await copy_slowly(catalog, src, [one, two])  # the same transfer, targets in any order
    assert again.nothing_to_do and again.transfer_id == 1
    async with DefaultDataManager(catalog=catalog) as manager:
        [record] = await manager.transfers()
        rows = list(csv.DictReader(io.StringIO(await manager.dump_state(record.id))))
    assert record.destinations == ("local/localhost", "local/localhost")
    assert record.dst_paths == (str(one), str(two))
    assert record.targets == (f"local/localhost:{one}", f"local/localhost:{two}")
    assert {row["destination"] for row in rows} == set(record.targets)
    assert len(rows) == 2 * again.files_total


async def test_a_rerun_with_fewer_targets_skips_what_the_earlier_transfer_wrote(
    tmp_path: Path,
) -> None:
    src = tmp_path / "tree"
    await asyncio.to_thread(make_tree, src)
    catalog = str(tmp_path / "catalog.sqlite")
    one, two, three = tmp_path / "one", tmp_path / "two", tmp_path / "three"
    await copy_slowly(catalog, src, [one, two])
    fewer = await copy_slowly(catalog, src, [two])
    assert fewer.nothing_to_do and fewer.transfer_id == 2
    mixed = await copy_slowly(catalog, src, [one, three])  # one is done, three is new
    [done_there] = [d for d in mixed.destinations if d.path == str(one)]
    [new_there] = [d for d in mixed.destinations if d.path == str(three)]
    assert done_there.bytes_skipped == TREE_BYTES
    assert new_there.bytes_skipped == 0 and new_there.bytes_done == TREE_BYTES
    for target in (one, two, three):
        assert await _same_tree(target, src)


async def test_partial_files_of_a_cancelled_transfer_resume_in_a_rerun_with_fewer_targets(
    tmp_path: Path,
) -> None:
    src = tmp_path / "tree"
    (src / "a").mkdir(parents=True)
    for index in range(3):
        (src / "a" / f"part{index}").write_bytes(os.urandom(16 * MiB))
    catalog = str(tmp_path / "catalog.sqlite")
    settings = _EIGHT_MIB_CHUNKS
    one, two = tmp_path / "one", tmp_path / "two"
    task = asyncio.create_task(copy_slowly(catalog, src, [one, two], delay=0.02, settings=settings))
    await wait_for_progress(catalog)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert len(leftovers(tmp_path)) == 2  # both staging trees, kept for a rerun
    fewer = await copy_slowly(catalog, src, [two], settings=settings)
    [there] = fewer.destinations
    assert there.bytes_skipped > 0
    assert there.bytes_done == fewer.bytes_total
    assert fewer.bytes_moved + there.bytes_skipped == fewer.bytes_total
    assert await _same_tree(two, src)
    both = await copy_slowly(catalog, src, [one, two], settings=settings)  # the first, rerun
    assert {d.path: d.bytes_skipped > 0 for d in both.destinations} == {
        str(one): True,
        str(two): True,
    }
    assert await _same_tree(one, src)
    assert leftovers(tmp_path) == []


async def test_transfers_journaled_before_paths_per_target_keep_their_path(
    tmp_path: Path,
) -> None:
    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as connection:  # what version 3 wrote
        connection.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
        connection.execute("INSERT INTO schema_version VALUES (3)")
        for step in (1, 2, 3):
            for statement in _MIGRATIONS[step]:
                connection.execute(statement)
        connection.execute(
            "INSERT INTO transfers (key, source, src_path, destinations, dst_path, state, "
            "started, updated) VALUES ('k', 'local/localhost', '/src', "
            "'[\"a/n\", \"b/n\"]', '/dst', 'done', 0, 0)"
        )
    async with DefaultDataManager(catalog=str(path)) as manager:
        [record] = await manager.transfers()
    assert record.dst_paths == ("/dst", "/dst")
    assert record.targets == ("a/n:/dst", "b/n:/dst")
