"""Names a connector lists are untrusted: the plan refuses any that would leave the tree."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from streamflow_data import (
    DefaultDataManager,
    ExecutionLocation,
    FileKind,
    FileStat,
    InvalidPathError,
    LocalConnector,
    NameTooLongError,
    RemotePathMapper,
    TransferError,
    UnsafePathError,
    WalkEntry,
)
from streamflow_data.model import relpath_fault
from streamflow_data.transfer.plan import plan_transfer

LOCAL = ExecutionLocation("local", "localhost", local=True)


@pytest.mark.parametrize(
    ("name", "fault"),
    [
        ("a/b.txt", None),
        ("..hidden/...", None),
        ("caf\udce9", None),
        ("", "an empty name"),
        ("/etc/passwd", "an absolute name"),
        ("..", "a '..' component"),
        ("a/../../x", "a '..' component"),
        ("./a", "a '.' component"),
        ("a//b", "an empty component"),
        ("a/", "an empty component"),
        ("a\0b", "a NUL byte in the name"),
    ],
)
def test_only_plain_relative_names_pass(name: str, fault: str | None) -> None:
    assert relpath_fault(name) == fault


class _Lister(LocalConnector):
    """A local directory whose listing holds one name more, whatever it is."""

    def __init__(self, extra: str) -> None:
        super().__init__()
        self.extra = extra

    async def walk(self, location: ExecutionLocation, path: str) -> AsyncIterator[WalkEntry]:
        async for entry in super().walk(location, path):
            yield entry
        yield WalkEntry(self.extra, FileStat(FileKind.FILE, 1, 0o644, 0))


@pytest.mark.parametrize("name", ["/etc/passwd", "a\0b", "../x"])
async def test_a_listing_with_an_unsafe_name_plans_nothing(tmp_path: Path, name: str) -> None:
    (tmp_path / "fine.txt").write_text("fine")
    with pytest.raises(UnsafePathError, match="on local/localhost: listed with a") as caught:
        await plan_transfer(_Lister(name), LOCAL, str(tmp_path))
    assert caught.value.path == f"{tmp_path}/{name}"


async def test_a_nul_byte_in_a_path_is_an_invalid_path_everywhere(tmp_path: Path) -> None:
    connector = LocalConnector()
    try:
        for attempt in (
            connector.stat(LOCAL, f"{tmp_path}/a\0b"),
            connector.mkdir(LOCAL, f"{tmp_path}/a\0b"),
            connector.open_reader(LOCAL, f"{tmp_path}/a\0b"),
        ):
            with pytest.raises(InvalidPathError, match="NUL byte"):
                await attempt
    finally:
        await connector.close()
    mapper = RemotePathMapper()
    with pytest.raises(InvalidPathError, match="NUL byte"):
        mapper.register(LOCAL, "/data/a\0b")
    with pytest.raises(InvalidPathError, match="NUL byte"):
        mapper.get("/data/a\0b")


async def test_a_name_too_long_is_a_permanent_typed_error(
    manager: DefaultDataManager, tmp_path: Path
) -> None:
    (tmp_path / "f").write_text("f")
    manager.register_path(LOCAL, str(tmp_path / "f"))
    target = f"{tmp_path}/{'n' * 300}"
    with pytest.raises(TransferError) as caught:
        await manager.transfer_data(LOCAL, str(tmp_path / "f"), [LOCAL], target, True)
    (failure,) = caught.value.failures
    assert isinstance(failure.cause, NameTooLongError) and not failure.cause.retryable
    assert dict(manager.statistics.errors) == {"NameTooLongError": 1}  # tried once


async def test_a_path_that_is_not_utf8_is_refused_and_the_catalog_goes_on(
    tmp_path: Path,
) -> None:
    catalog = str(tmp_path / "catalog.sqlite")
    async with DefaultDataManager(catalog=catalog) as manager:
        with pytest.raises(InvalidPathError, match="not UTF-8"):
            manager.register_path(LOCAL, "/data/caf\udce9")
        manager.register_path(LOCAL, "/data/café")
        await manager.flush()
    async with DefaultDataManager(catalog=catalog) as manager:
        assert [r.path for r in manager.get_data_locations("/data/café")] == ["/data/café"]


async def test_a_transfer_that_fails_while_it_plans_is_journaled_as_failed(
    tmp_path: Path,
) -> None:
    (tmp_path / "src").mkdir()
    connectors = {"local": LocalConnector(), "hostile": _Lister("../x")}
    hostile = ExecutionLocation("hostile", "localhost", local=True)
    async with DefaultDataManager(connectors, catalog=str(tmp_path / "cat.sqlite")) as manager:
        manager.register_path(hostile, str(tmp_path / "src"))
        with pytest.raises(TransferError, match="unsafe path"):
            await manager.transfer_data(hostile, str(tmp_path / "src"), [LOCAL], f"{tmp_path}/d")
        [record] = await manager.transfers()
    assert record.state == "failed"


async def test_what_an_interrupted_transfer_left_in_a_source_is_not_planned(
    tmp_path: Path,
) -> None:
    (tmp_path / "data.txt").write_text("data")
    (tmp_path / ".data.txt.0123456789ab.sfd-part").write_text("partial")
    (tmp_path / ".tree.0123456789ab.sfd-part" / "f").mkdir(parents=True)
    (tmp_path / ".not-ours.sfd-part").write_text("a user's file")
    connector = LocalConnector()
    try:
        plan = await plan_transfer(connector, LOCAL, str(tmp_path))
    finally:
        await connector.close()
    listed = sorted(e.relpath for e in [*plan.files, *plan.directories])
    assert listed == [".not-ours.sfd-part", "data.txt"]
