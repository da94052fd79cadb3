"""The connector conformance suite: one set of tests every connector passes unchanged.

A connector's test module subclasses :class:`ConnectorConformance` and provides a
``harness`` fixture returning a :class:`ConnectorHarness`: the connector, one of its
locations and an empty directory there that the tests may fill. Tests of features a
connector does not declare in its :class:`~streamflow_data.connectors.base.Capabilities`
are skipped with the capability named. The tests use only the connector's own operations,
so they run against any storage::

    class TestMyStore(ConnectorConformance):
        @pytest.fixture
        async def harness(self, tmp_path):
            connector = MyStoreConnector(...)
            yield ConnectorHarness(connector, "mystore", location, "/scratch/test")
            await connector.close()

Requires pytest and pytest-asyncio (the ``test`` extra).
"""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

import pytest

from streamflow_data.connectors.base import (
    CopyItem,
    FileKind,
    LinkItem,
    LocalFile,
    MetadataItem,
    WriteItem,
)
from streamflow_data.connectors.local import LocalConnector
from streamflow_data.errors import (
    ChecksumMismatchError,
    NotDirectoryError,
    PathExistsError,
    PathNotFoundError,
    SourceChangedError,
    UnsupportedOperationError,
)
from streamflow_data.manager import DefaultDataManager
from streamflow_data.model import Digest
from streamflow_data.testing.harness import (
    CHUNK,
    MTIME_NS,
    ConnectorHarness,
    RecordedEvents,
    digest,
    make_tree,
    payload,
    require,
    tree_contents,
)

__all__ = ["ConnectorConformance", "ConnectorHarness"]


@pytest.mark.asyncio
class ConnectorConformance:
    """Behaviour every connector must have. Subclass it and provide ``harness``."""

    @pytest.fixture
    def harness(self) -> ConnectorHarness:
        """Override in the subclass: the connector under test and a scratch directory."""
        raise NotImplementedError("provide a `harness` fixture returning a ConnectorHarness")

    async def _names(self, harness: ConnectorHarness, path: str) -> set[str]:
        return {entry.relpath async for entry in harness.connector.walk(harness.location, path)}

    # -- locations and metadata --------------------------------------------------------------

    async def test_serves_its_location(self, harness: ConnectorHarness) -> None:
        locations = harness.connector.locations(harness.deployment)
        assert harness.location in locations
        assert all(location.deployment == harness.deployment for location in locations)

    async def test_a_warmed_up_location_serves_operations(self, harness: ConnectorHarness) -> None:
        """``warm_up``, twice (the second finds it done), leaves the location working."""
        connector, location = harness.connector, harness.location
        await connector.warm_up(location)
        await connector.warm_up(location)
        await connector.write_file(location, harness.path("warm"), b"up")
        assert await connector.read_file(location, harness.path("warm")) == b"up"

    async def test_stat_of_a_missing_path_raises_path_not_found(
        self, harness: ConnectorHarness
    ) -> None:
        missing = harness.path("missing")
        with pytest.raises(PathNotFoundError, match="missing"):
            await harness.connector.stat(harness.location, missing)
        assert not await harness.connector.exists(harness.location, missing)

    async def test_stat_reports_files_and_directories(self, harness: ConnectorHarness) -> None:
        connector, location = harness.connector, harness.location
        await connector.mkdir(location, harness.path("dir"))
        await connector.write_file(location, harness.path("dir", "file"), b"12345")
        file_stat = await connector.stat(location, harness.path("dir", "file"))
        assert (file_stat.kind, file_stat.size) == (FileKind.FILE, 5)
        assert (await connector.stat(location, harness.path("dir"))).kind is FileKind.DIRECTORY

    async def test_mode_and_mtime_are_kept(self, harness: ConnectorHarness) -> None:
        require(harness, "permissions")
        require(harness, "mtimes")
        connector, location = harness.connector, harness.location
        await connector.write_file(location, harness.path("f"), b"x", mode=0o640, mtime_ns=MTIME_NS)
        info = await connector.stat(location, harness.path("f"))
        assert (info.mode, info.mtime_ns) == (0o640, MTIME_NS)
        await connector.mkdir(location, harness.path("d"))
        await connector.set_metadata(location, harness.path("d"), mode=0o750, mtime_ns=MTIME_NS)
        info = await connector.stat(location, harness.path("d"))
        assert (info.mode, info.mtime_ns) == (0o750, MTIME_NS)

    # -- reading and writing -----------------------------------------------------------------

    @pytest.mark.parametrize("size", [0, 1, 65_536, 1_000_003])
    async def test_write_then_read_round_trips(self, harness: ConnectorHarness, size: int) -> None:
        data = payload(size)
        await harness.connector.write_file(harness.location, harness.path("blob"), data)
        assert await harness.connector.read_file(harness.location, harness.path("blob")) == data
        assert (await harness.connector.stat(harness.location, harness.path("blob"))).size == size

    async def test_ranged_reads_return_exact_ranges(self, harness: ConnectorHarness) -> None:
        data = payload(300_000)
        await harness.connector.write_file(harness.location, harness.path("blob"), data)
        async with await harness.connector.open_reader(
            harness.location, harness.path("blob")
        ) as reader:
            assert await reader.read(0, 10) == data[:10]
            assert await reader.read(123_457, 70_000) == data[123_457:193_457]
            assert await reader.read(299_990, 100) == data[299_990:]
            assert await reader.read(300_000, 100) == b""

    async def test_readinto_fills_buffers_at_offsets(self, harness: ConnectorHarness) -> None:
        data = payload(200_000)
        await harness.connector.write_file(harness.location, harness.path("blob"), data)
        buffer = memoryview(bytearray(65_536))
        async with await harness.connector.open_reader(
            harness.location, harness.path("blob")
        ) as reader:
            assert await reader.readinto(1000, buffer) == 65_536
            assert buffer.tobytes() == data[1000:66_536]
            assert await reader.readinto(190_000, buffer) == 10_000
            assert buffer[:10_000].tobytes() == data[190_000:]

    async def test_commit_verifies_the_stored_bytes(self, harness: ConnectorHarness) -> None:
        connector, location = harness.connector, harness.location
        data = payload(100_000)
        right = await digest(data)
        async with await connector.open_writer(location, harness.path("good")) as writer:
            await writer.write(0, data)
            assert await writer.digest() == right
            await writer.commit(right)
        assert await connector.read_file(location, harness.path("good")) == data
        writer = await connector.open_writer(location, harness.path("bad"))
        await writer.write(0, data)
        with pytest.raises(ChecksumMismatchError, match="bad"):
            await writer.commit(Digest(len(data), right.crc32c ^ 1))
        with pytest.raises(ChecksumMismatchError):
            await connector.write_file(
                location, harness.path("bad"), data, expected=Digest(len(data) + 1, right.crc32c)
            )
        await connector.write_file(location, harness.path("also-good"), data, expected=right)
        assert await self._names(harness, harness.root) == {"good", "also-good"}

    async def test_reading_a_missing_file_raises_path_not_found(
        self, harness: ConnectorHarness
    ) -> None:
        with pytest.raises(PathNotFoundError):
            await harness.connector.open_reader(harness.location, harness.path("missing"))
        with pytest.raises(PathNotFoundError):
            await harness.connector.read_file(harness.location, harness.path("missing"))

    async def test_written_file_appears_only_on_commit(self, harness: ConnectorHarness) -> None:
        connector, location = harness.connector, harness.location
        target = harness.path("out")
        parts = [payload(100_000, seed) for seed in range(3)]
        async with await connector.open_writer(location, target) as writer:
            offset = 0
            for part in parts:
                await writer.write(offset, part)
                offset += len(part)
            assert not await connector.exists(location, target)
            await writer.commit()
        assert await connector.read_file(location, target) == b"".join(parts)
        assert await self._names(harness, harness.root) == {"out"}

    async def test_abandoned_writer_leaves_nothing(self, harness: ConnectorHarness) -> None:
        connector, location = harness.connector, harness.location

        async def interrupted_write() -> None:
            async with await connector.open_writer(location, harness.path("out")) as writer:
                await writer.write(0, b"partial")
                raise RuntimeError("interrupted")

        with pytest.raises(RuntimeError, match="interrupted"):
            await interrupted_write()
        writer = await connector.open_writer(location, harness.path("out2"))
        await writer.write(0, b"partial")
        await writer.abort()
        await writer.abort()
        assert await self._names(harness, harness.root) == set()

    async def test_a_suspended_writer_resumes_from_its_token(
        self, harness: ConnectorHarness
    ) -> None:
        connector, location = harness.connector, harness.location
        target = harness.path("out")
        first, rest = payload(150_000), payload(50_000, seed=3)
        writer = await connector.open_writer(location, target, mtime_ns=MTIME_NS)
        await writer.write(0, first)
        token = writer.resume_token
        await writer.suspend()
        assert not await connector.exists(location, target)
        if token is None:  # not resumable: suspending discarded the bytes
            assert await self._names(harness, harness.root) == set()
            return
        resumed = await connector.resume_writer(location, target, token, mtime_ns=MTIME_NS)
        async with resumed:
            # What it says the partial file holds (if it says anything) is what was written.
            held = await resumed.held_digests(10_000, 65_536)
            pieces = [first[at : at + 65_536] for at in range(10_000, len(first), 65_536)]
            assert held in ([], [hashlib.sha256(piece).digest() for piece in pieces])
            await resumed.write(len(first), rest)
            await resumed.commit(await digest(first + rest))
        assert await connector.read_file(location, target) == first + rest
        assert await self._names(harness, harness.root) == {"out"}

    async def test_a_discarded_partial_file_cannot_be_resumed(
        self, harness: ConnectorHarness
    ) -> None:
        connector, location = harness.connector, harness.location
        target = harness.path("out")
        writer = await connector.open_writer(location, target)
        await writer.write(0, b"partial")
        token = writer.resume_token
        await writer.abort()
        if token is None:
            pytest.skip(f"{type(connector).__name__} writers cannot be resumed")
        with pytest.raises((PathNotFoundError, UnsupportedOperationError)):
            await connector.resume_writer(location, target, token)

    async def test_commit_replaces_an_existing_file(self, harness: ConnectorHarness) -> None:
        connector, location = harness.connector, harness.location
        await connector.write_file(location, harness.path("f"), b"old content")
        await connector.write_file(location, harness.path("f"), b"new")
        assert await connector.read_file(location, harness.path("f")) == b"new"
        assert await self._names(harness, harness.root) == {"f"}

    async def test_writing_into_a_missing_directory_raises_path_not_found(
        self, harness: ConnectorHarness
    ) -> None:
        with pytest.raises(PathNotFoundError):
            await harness.connector.open_writer(harness.location, harness.path("no", "file"))

    async def test_ranged_writes_in_any_order(self, harness: ConnectorHarness) -> None:
        require(harness, "ranged_writes")
        connector, location = harness.connector, harness.location
        data = payload(300_000)
        async with await connector.open_writer(location, harness.path("out")) as writer:
            for start in (200_000, 0, 100_000):
                await writer.write(start, data[start : start + 100_000])
            await writer.commit()
        assert await connector.read_file(location, harness.path("out")) == data

    async def test_bulk_operations_report_each_file(self, harness: ConnectorHarness) -> None:
        connector, location = harness.connector, harness.location
        files = {f"f{index}": payload(1000 + index, index) for index in range(5)}
        items = [
            WriteItem(harness.path(name), data, expected=await digest(data))
            for name, data in files.items()
        ]
        bad = WriteItem(harness.path("no-dir", "x"), b"x")
        corrupt = WriteItem(harness.path("corrupt"), b"abc", expected=await digest(b"abd"))
        results = await connector.write_files(location, [*items[:2], bad, corrupt, *items[2:]])
        assert results[:2] == [None, None] and results[4:] == [None] * 3
        assert isinstance(results[2], PathNotFoundError)
        assert isinstance(results[3], ChecksumMismatchError)
        paths = [harness.path(name) for name in files]
        contents = await connector.read_files(location, [*paths, harness.path("missing")])
        assert contents[:5] == list(files.values())
        assert isinstance(contents[5], PathNotFoundError)
        digests = await connector.sha256_files(location, [*paths, harness.path("missing")])
        assert digests[:5] == [hashlib.sha256(data).hexdigest() for data in files.values()]
        assert isinstance(digests[5], PathNotFoundError)
        if connector.capabilities.server_side_copy:
            copies = [CopyItem(paths[0], harness.path("copy0"), size=len(files["f0"]))]
            copies.append(CopyItem(harness.path("missing"), harness.path("copy1")))
            outcome = await connector.copy_files(location, copies)
            assert outcome[0] is None and isinstance(outcome[1], PathNotFoundError)
            assert await connector.read_file(location, harness.path("copy0")) == files["f0"]
        names = await self._names(harness, harness.root)
        assert "corrupt" not in names and "copy1" not in names

    async def test_staging_trees_are_finished_and_published_by_rename(
        self, harness: ConnectorHarness
    ) -> None:
        """``finish_tree`` gives a staged tree's directories their modes and times, then
        renames it into place; a tree written in place gets the metadata only."""
        connector, location = harness.connector, harness.location
        capabilities = connector.capabilities
        mode, mtime_ns = 0o750, MTIME_NS
        await connector.mkdir(location, harness.path("stage", "sub"))
        await connector.write_file(location, harness.path("stage", "sub", "f"), b"f", atomic=False)
        items = [
            MetadataItem(harness.path(*parts), mode, mtime_ns)
            for parts in (("stage", "sub"), ("stage",))
        ]
        done = "published"
        if not capabilities.atomic_directories:
            with pytest.raises(UnsupportedOperationError):
                await connector.rename(location, harness.path("stage"), harness.path(done))
            await connector.finish_tree(location, items, None, harness.path("stage"))
            done = "stage"
        else:
            writer = await connector.open_writer(location, harness.path("stage", "g"), atomic=False)
            await writer.write(0, b"partial")
            await writer.abort()
            async with await connector.open_writer(
                location, harness.path("stage", "h"), atomic=False, mode=0o600
            ) as writer:
                await writer.write(0, b"h")
                await writer.commit(await digest(b"h"))
            await connector.finish_tree(location, items, harness.path("stage"), harness.path(done))
            assert await self._names(harness, harness.root) == {
                "published",
                "published/sub",
                "published/sub/f",
                "published/h",
            }
            assert await connector.read_file(location, harness.path("published", "h")) == b"h"
            await connector.mkdir(location, harness.path("other"))
            with pytest.raises(PathExistsError):
                await connector.rename(location, harness.path("other"), harness.path(done))
        for info in [
            await connector.stat(location, harness.path(done, *p)) for p in ((), ("sub",))
        ]:
            assert info.mode == mode or not capabilities.permissions
            assert info.mtime_ns == mtime_ns or not capabilities.mtimes

    # -- directories, links, removal ---------------------------------------------------------

    async def test_mkdir_creates_parents_and_accepts_existing(
        self, harness: ConnectorHarness
    ) -> None:
        connector, location = harness.connector, harness.location
        await connector.mkdir(location, harness.path("a", "b", "c"))
        await connector.mkdir(location, harness.path("a", "b", "c"))
        assert (await connector.stat(location, harness.path("a", "b"))).kind is FileKind.DIRECTORY
        await connector.write_file(location, harness.path("file"), b"")
        with pytest.raises((PathExistsError, NotDirectoryError)):
            await connector.mkdir(location, harness.path("file"))

    async def test_walk_lists_a_tree_parents_first(self, harness: ConnectorHarness) -> None:
        connector, location = harness.connector, harness.location
        await connector.mkdir(location, harness.path("d1", "d2"))
        await connector.mkdir(location, harness.path("empty"))
        for name in ("top", "d1/mid", "d1/d2/deep"):
            await connector.write_file(location, harness.path(name), name.encode())
        entries = [entry async for entry in connector.walk(location, harness.root)]
        kinds = {entry.relpath: entry.stat.kind for entry in entries}
        assert kinds == {
            "top": FileKind.FILE,
            "empty": FileKind.DIRECTORY,
            "d1": FileKind.DIRECTORY,
            "d1/mid": FileKind.FILE,
            "d1/d2": FileKind.DIRECTORY,
            "d1/d2/deep": FileKind.FILE,
        }
        order = [entry.relpath for entry in entries]
        for relpath in order:
            if "/" in relpath:
                assert order.index(relpath.rsplit("/", 1)[0]) < order.index(relpath)
        sizes = {entry.relpath: entry.stat.size for entry in entries}
        assert sizes["d1/d2/deep"] == len(b"d1/d2/deep")

    async def test_walk_follows_a_link_at_its_root(self, harness: ConnectorHarness) -> None:
        """A walk lists what its root leads to (a transfer copies the data, as ``cp -r``
        copies the directory a named link points to); links below it stay links."""
        require(harness, "symlinks")
        connector, location = harness.connector, harness.location
        await connector.mkdir(location, harness.path("tree"))
        await connector.write_file(location, harness.path("tree", "f"), b"f")
        await connector.symlink(location, "f", harness.path("tree", "inner"))
        await connector.symlink(location, "tree", harness.path("link"))
        listed = {
            e.relpath: e.stat.kind async for e in connector.walk(location, harness.path("link"))
        }
        assert listed == {"f": FileKind.FILE, "inner": FileKind.SYMLINK}

    async def test_walk_errors_are_typed(self, harness: ConnectorHarness) -> None:
        connector, location = harness.connector, harness.location
        with pytest.raises(PathNotFoundError):
            _ = [entry async for entry in connector.walk(location, harness.path("missing"))]
        await connector.write_file(location, harness.path("file"), b"x")
        with pytest.raises(NotDirectoryError):
            _ = [entry async for entry in connector.walk(location, harness.path("file"))]

    async def test_symlinks_are_created_reported_and_replaced(
        self, harness: ConnectorHarness
    ) -> None:
        connector, location = harness.connector, harness.location
        if not connector.capabilities.symlinks:
            with pytest.raises(UnsupportedOperationError):
                await connector.symlink(location, "target", harness.path("link"))
            return
        await connector.write_file(location, harness.path("target"), b"data")
        await connector.symlink(location, "target", harness.path("link"))
        info = await connector.stat(location, harness.path("link"))
        assert (info.kind, info.target) == (FileKind.SYMLINK, "target")
        followed = await connector.stat(location, harness.path("link"), follow_symlinks=True)
        assert (followed.kind, followed.size) == (FileKind.FILE, 4)
        await connector.symlink(location, "elsewhere", harness.path("link"))
        assert (await connector.stat(location, harness.path("link"))).target == "elsewhere"
        listed = {e.relpath: e.stat.kind async for e in connector.walk(location, harness.root)}
        assert listed == {"target": FileKind.FILE, "link": FileKind.SYMLINK}
        await connector.make_symlinks(
            location, [LinkItem("target", harness.path("timed"), MTIME_NS)]
        )
        await connector.symlink(location, "target", harness.path("timed-one"), mtime_ns=MTIME_NS)
        for name in ("timed", "timed-one"):
            timed = await connector.stat(location, harness.path(name))
            assert timed.target == "target"
            if connector.capabilities.mtimes:
                assert timed.mtime_ns == MTIME_NS  # the link's own time, not its target's
                followed = await connector.stat(location, harness.path(name), follow_symlinks=True)
                assert followed.mtime_ns != MTIME_NS

    async def test_remove_files_trees_and_missing_paths(self, harness: ConnectorHarness) -> None:
        connector, location = harness.connector, harness.location
        await connector.mkdir(location, harness.path("tree", "sub"))
        await connector.write_file(location, harness.path("tree", "sub", "f"), b"x")
        await connector.write_file(location, harness.path("file"), b"x")
        await connector.remove(location, harness.path("file"))
        await connector.remove(location, harness.path("tree"))
        await connector.remove(location, harness.path("never-existed"))
        assert await self._names(harness, harness.root) == set()

    async def test_server_side_copy(self, harness: ConnectorHarness) -> None:
        require(harness, "server_side_copy")
        connector, location = harness.connector, harness.location
        data = payload(200_000)
        await connector.write_file(location, harness.path("src"), data)
        await connector.copy(
            location, harness.path("src"), harness.path("dst"), mode=0o600, mtime_ns=MTIME_NS
        )
        assert await connector.read_file(location, harness.path("dst")) == data
        info = await connector.stat(location, harness.path("dst"))
        if connector.capabilities.permissions:
            assert info.mode == 0o600
        if connector.capabilities.mtimes:
            assert info.mtime_ns == MTIME_NS
        with pytest.raises(PathNotFoundError):
            await connector.copy(location, harness.path("missing"), harness.path("dst2"))
        with pytest.raises(ChecksumMismatchError):
            await connector.copy(location, harness.path("src"), harness.path("dst3"), size=1)
        assert await self._names(harness, harness.root) == {"src", "dst"}

    # -- a file of this machine by the connector's own route --------------------------------

    async def test_get_file_fills_the_local_file_and_tells_what_it_moved(
        self, harness: ConnectorHarness, tmp_path: Path
    ) -> None:
        """Where the connector has its own route into a local file, the file holds the
        bytes at their offsets, progress counts each once, and every chunk told held is
        held, with its CRC32C."""
        connector, location = harness.connector, harness.location
        data = payload(300_000)
        await connector.write_file(location, harness.path("blob"), data)
        local = tmp_path / "local"
        await asyncio.to_thread(local.write_bytes, b"." * len(data))
        events = RecordedEvents()
        cut = LocalFile(str(local), len(data), CHUNK, 2)
        async with await connector.open_reader(location, harness.path("blob")) as reader:
            route = connector.get_file(reader, cut, events)
            if route is None:
                pytest.skip(f"{type(connector).__name__} has no get_file route")
            await route
        assert await asyncio.to_thread(local.read_bytes) == data
        assert sum(events.moves) == len(data)
        await events.check_held(data)

    async def test_get_file_of_a_file_shorter_than_planned_is_a_source_change(
        self, harness: ConnectorHarness, tmp_path: Path
    ) -> None:
        connector, location = harness.connector, harness.location
        await connector.write_file(location, harness.path("blob"), payload(100_000))
        local = tmp_path / "local"
        await asyncio.to_thread(local.write_bytes, b"")
        cut = LocalFile(str(local), 150_000, CHUNK, 1)
        async with await connector.open_reader(location, harness.path("blob")) as reader:
            route = connector.get_file(reader, cut, RecordedEvents())
            if route is None:
                pytest.skip(f"{type(connector).__name__} has no get_file route")
            with pytest.raises(SourceChangedError):
                await route

    async def test_put_file_writes_the_local_file_and_tells_what_it_moved(
        self, harness: ConnectorHarness, tmp_path: Path
    ) -> None:
        """Where the connector has its own route from a local file, the committed file is
        the local one, progress counts each byte once, and every chunk told held is held,
        with its CRC32C."""
        connector, location = harness.connector, harness.location
        data = payload(300_000)
        local = tmp_path / "local"
        await asyncio.to_thread(local.write_bytes, data)
        events = RecordedEvents()
        cut = LocalFile(str(local), len(data), CHUNK, 2)
        async with await connector.open_writer(location, harness.path("blob")) as writer:
            route = connector.put_file(writer, cut, events)
            if route is None:
                pytest.skip(f"{type(connector).__name__} has no put_file route")
            await route
            await writer.commit()
        assert await connector.read_file(location, harness.path("blob")) == data
        assert sum(events.moves) == len(data)
        await events.check_held(data)

    # -- through the data manager ------------------------------------------------------------

    async def test_round_trip_through_the_data_manager(
        self, harness: ConnectorHarness, tmp_path: Path
    ) -> None:
        """A local tree copied to the connector and back arrives byte for byte."""
        source, back = tmp_path / "source", tmp_path / "back"
        await asyncio.to_thread(make_tree, source)
        local = LocalConnector()
        # The harness owns its connector; the manager is not closed so it does not close it.
        manager = DefaultDataManager({"local": local, harness.deployment: harness.connector})
        try:
            here = manager.locations("local")[0]
            manager.register_path(here, str(source))
            await manager.transfer_data(here, str(source), [harness.location], harness.path("tree"))
            remote = manager.get_data_locations(harness.path("tree"), deployment=harness.deployment)
            assert [replica.path for replica in remote] == [harness.path("tree")]
            await manager.transfer_data(harness.location, harness.path("tree"), [here], str(back))
        finally:
            await local.close()
        assert await asyncio.to_thread(tree_contents, back) == await asyncio.to_thread(
            tree_contents, source
        )
