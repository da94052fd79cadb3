"""The transfer journal: killed or cancelled transfers resume, finished ones do nothing."""

from __future__ import annotations

import asyncio
import csv
import io
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from benchmarks.resume_child import kill_halfway_and_rerun
from streamflow_data import (
    DefaultDataManager,
    ExecutionLocation,
    InvalidPathError,
    LocalConnector,
    TransferSettings,
    UnknownTransferError,
    WalkEntry,
)
from tests.conftest import LOCAL
from tests.helpers import (
    SIZE,
    SMALL,
    Hosts,
    LastSnapshot,
    copy_slowly,
    leftovers,
    make_tree,
    snapshot,
    wait_for_progress,
)
from tests.test_engine import put_file
from tests.wrappers import WrappingConnector

MiB = 1024 * 1024


def test_a_copy_killed_halfway_moves_only_what_is_missing_when_rerun(
    tmp_path: Path, catalog_path: str
) -> None:
    src = tmp_path / "big.bin"
    src.write_bytes(os.urandom(256 * MiB))
    dst = tmp_path / "copy.bin"
    catalog = catalog_path
    result = kill_halfway_and_rerun(catalog, str(src), str(dst), delay=0.05)
    assert 0 < result.missing < 256 * MiB
    assert result.moved + result.skipped == 256 * MiB
    # What the journal had not recorded yet is found by digests of the partial file's
    # blocks: the rerun sends exactly the blocks that are not there whole.
    assert result.moved == result.missing, result
    assert dst.read_bytes() == src.read_bytes()
    assert leftovers(tmp_path) == []


async def test_a_finished_transfer_rerun_moves_nothing_and_says_so(
    tmp_path: Path, catalog_path: str
) -> None:
    src = tmp_path / "tree"
    make_tree(src)
    catalog = catalog_path
    first = await copy_slowly(catalog, src, [tmp_path / "copy"])
    assert not first.nothing_to_do and first.bytes_moved == first.bytes_total
    again = await copy_slowly(catalog, src, [tmp_path / "copy"])
    assert again.nothing_to_do
    assert again.bytes_moved == 0 and again.files_done == again.files_total
    assert snapshot(tmp_path / "copy") == snapshot(src)


async def test_a_changed_source_file_starts_over_and_the_rest_is_skipped(
    tmp_path: Path, catalog_path: str
) -> None:
    src = tmp_path / "tree"
    make_tree(src)
    catalog = catalog_path
    await copy_slowly(catalog, src, [tmp_path / "copy"])
    (src / "small.txt").write_text("HELLO")  # same size, new time
    again = await copy_slowly(catalog, src, [tmp_path / "copy"])
    assert not again.nothing_to_do
    assert again.bytes_moved == 5
    assert again.destinations[0].files_skipped == again.files_total - 1
    assert (tmp_path / "copy" / "small.txt").read_text() == "HELLO"


async def test_a_destination_file_changed_since_is_copied_again(
    tmp_path: Path, catalog_path: str
) -> None:
    src = tmp_path / "tree"
    make_tree(src)
    catalog = catalog_path
    await copy_slowly(catalog, src, [tmp_path / "copy"])
    (tmp_path / "copy" / "sub" / "big.bin").write_bytes(b"truncated")
    again = await copy_slowly(catalog, src, [tmp_path / "copy"])
    assert again.bytes_moved == 3_000_000
    assert snapshot(tmp_path / "copy") == snapshot(src)


async def test_a_cancelled_tree_copy_resumes_from_its_partial_files(
    tmp_path: Path, catalog_path: str
) -> None:
    src = tmp_path / "tree"
    (src / "a").mkdir(parents=True)
    for index in range(3):
        (src / "a" / f"part{index}").write_bytes(os.urandom(24 * MiB))
    (src / "small").write_text("small")
    catalog = catalog_path
    settings = TransferSettings(chunk_size=8 * MiB, block_size=1 * MiB)
    task = asyncio.create_task(
        copy_slowly(catalog, src, [tmp_path / "copy"], delay=0.02, settings=settings)
    )
    await wait_for_progress(catalog)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not (tmp_path / "copy").exists()  # nothing at the destination path
    assert len(leftovers(tmp_path)) == 1  # the staging tree, kept for the rerun
    again = await copy_slowly(catalog, src, [tmp_path / "copy"], settings=settings)
    assert again.destinations[0].bytes_skipped > 0
    assert again.bytes_moved + again.destinations[0].bytes_skipped == again.bytes_total
    assert snapshot(tmp_path / "copy") == snapshot(src)
    assert leftovers(tmp_path) == []


async def test_dump_state_lists_every_file_and_destination_as_csv(
    tmp_path: Path, catalog_path: str
) -> None:
    src = tmp_path / "tree"
    make_tree(src)
    catalog = catalog_path
    done = await copy_slowly(catalog, src, [tmp_path / "copy"])
    async with DefaultDataManager(catalog=catalog) as manager:
        [record] = await manager.transfers()
        assert record.id == done.transfer_id and record.state == "done"
        assert record.destinations == ("local/localhost",)
        assert record.source == f"source/localhost:{src}"
        rows = list(csv.DictReader(io.StringIO(await manager.dump_state(record.id))))
        with pytest.raises(UnknownTransferError, match="no transfer 999"):
            await manager.dump_state(999)
    assert {row["relpath"] for row in rows} == {
        "empty-file",
        "small.txt",
        "sub/big.bin",
        "sub/deeper/x",
        "sub/script.sh",
    }
    assert {row["state"] for row in rows} == {"valid"}
    big = next(row for row in rows if row["relpath"] == "sub/big.bin")
    assert big["size"] == big["bytes_written"] == "3000000"
    assert big["destination"] == f"local/localhost:{tmp_path / 'copy'}"
    assert big["partial_file"] == ""


async def test_a_resume_token_must_name_a_partial_file_of_its_path(tmp_path: Path) -> None:
    connector = LocalConnector()
    target = tmp_path / "file"
    elsewhere = tmp_path / "victim"
    elsewhere.write_text("keep me")
    with pytest.raises(InvalidPathError, match="not a partial file"):
        await connector.resume_writer(LOCAL, str(target), str(elsewhere))
    assert elsewhere.read_text() == "keep me"
    await connector.close()


async def test_a_rerun_into_an_existing_tree_lists_it_once(
    tmp_path: Path, catalog_path: str
) -> None:
    """Looking for links in the way and for what an earlier run left valid both need
    the destination's listing: one walk serves both."""
    src = tmp_path / "tree"
    await asyncio.to_thread(make_tree, src)
    walked: list[str] = []

    class Listing(LocalConnector):
        async def walk(self, location: ExecutionLocation, path: str) -> AsyncIterator[WalkEntry]:
            walked.append(path)
            async for entry in super().walk(location, path):
                yield entry

    catalog = catalog_path
    for _ in range(2):
        walked.clear()
        connectors = {"local": Listing()}
        async with DefaultDataManager(connectors, catalog=catalog) as manager:
            manager.register_path(LOCAL, str(src))
            await manager.transfer_data(LOCAL, str(src), [LOCAL], str(tmp_path / "copy"), True)
    assert walked.count(str(tmp_path / "copy")) == 1  # the rerun: the tree exists
    expected = await asyncio.to_thread(snapshot, src)
    assert await asyncio.to_thread(snapshot, tmp_path / "copy") == expected


@pytest.mark.parametrize("size", [SIZE, SMALL.block_size], ids=["blocks", "whole"])
async def test_a_copy_published_as_its_run_is_interrupted_is_not_copied_again(
    hosts: Hosts, tmp_path: Path, size: int, catalog_path: str
) -> None:
    """The commit landed, the run was cancelled before it recorded the file as valid: the
    rerun finds the whole copy at its path and moves nothing."""
    source = hosts.add("src")
    data = await put_file(hosts, "src", "/f.bin", size)
    target = hosts.add("dst")
    published = asyncio.Event()

    async def hang() -> None:
        published.set()
        await asyncio.Event().wait()  # until cancelled

    hosts.connectors["dst"].after_commit = hang
    catalog = catalog_path
    async with DefaultDataManager(hosts.connectors, catalog=catalog, settings=SMALL) as manager:
        manager.register_path(source, "/f.bin")
        copy = asyncio.create_task(manager.transfer_data(source, "/f.bin", [target], "/c.bin"))
        await asyncio.wait_for(published.wait(), 10)
        copy.cancel()
        with pytest.raises(asyncio.CancelledError):
            await copy
    assert await asyncio.to_thread(hosts.path("dst", "/c.bin").read_bytes) == data
    finished = LastSnapshot()
    connectors = {name: WrappingConnector(str(hosts.base / name)) for name in ("src", "dst")}
    async with DefaultDataManager(
        connectors, catalog=catalog, settings=SMALL, listeners=[finished]
    ) as manager:
        manager.register_path(source, "/f.bin")
        await manager.transfer_data(source, "/f.bin", [target], "/c.bin")
        assert manager.get_data_locations("/c.bin", deployment="dst")
    assert finished.last is not None and finished.last.nothing_to_do
    assert finished.last.bytes_moved == 0
