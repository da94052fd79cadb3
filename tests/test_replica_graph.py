"""Rules 1-4 of the contract: keys, parents, relations, invalidation."""

from __future__ import annotations

from pathlib import Path

import pytest

from streamflow_data import (
    DataManager,
    DataType,
    DefaultDataManager,
    ExecutionLocation,
    InvalidPathError,
    RemotePathMapper,
    UnknownPathError,
)

A = ExecutionLocation("cluster", "node-a")
B = ExecutionLocation("cluster", "node-b")
C = ExecutionLocation("cloud", "vm-1")
LOCAL = ExecutionLocation("local", "localhost", local=True)


@pytest.fixture
def manager(contract_manager: DataManager) -> DataManager:
    """The contract's rules hold in this process and through a service alike."""
    return contract_manager


def where(replicas: list) -> set[tuple[str, str, str]]:  # type: ignore[type-arg]
    return {(r.deployment, r.name, r.path) for r in replicas}


# -- rule 1: replicas are keyed by (deployment, location name, path) ------------------------------


async def test_same_path_on_two_locations_is_two_replicas(manager: DefaultDataManager) -> None:
    first = manager.register_path(A, "/data/input.txt")
    second = manager.register_path(B, "/data/input.txt")
    assert first is not second
    assert where(manager.get_data_locations("/data/input.txt")) == {
        ("cluster", "node-a", "/data/input.txt"),
        ("cluster", "node-b", "/data/input.txt"),
    }


async def test_filters_narrow_by_deployment_location_and_type(
    manager: DefaultDataManager,
) -> None:
    manager.register_path(A, "/d/f")
    manager.register_path(B, "/d/f", data_type=DataType.SYMBOLIC_LINK)
    manager.register_path(C, "/d/f")
    get = manager.get_data_locations
    assert where(get("/d/f", deployment="cloud")) == {("cloud", "vm-1", "/d/f")}
    assert where(get("/d/f", location_name="node-b")) == {("cluster", "node-b", "/d/f")}
    assert where(get("/d/f", deployment="cluster", data_type=DataType.PRIMARY)) == {
        ("cluster", "node-a", "/d/f")
    }
    assert get("/d/f", deployment="cluster", location_name="vm-1") == []
    assert get("/d/f", deployment="nowhere") == []
    assert get("/never/registered") == []


async def test_same_location_name_in_two_deployments_is_two_locations(
    manager: DefaultDataManager,
) -> None:
    manager.register_path(ExecutionLocation("one", "node"), "/x")
    manager.register_path(ExecutionLocation("two", "node"), "/x")
    assert len(manager.get_data_locations("/x", location_name="node")) == 2


async def test_paths_are_normalized_and_must_be_absolute(manager: DefaultDataManager) -> None:
    replica = manager.register_path(A, "/data//sub/./f.txt/")
    assert replica.path == "/data/sub/f.txt"
    assert manager.get_data_locations("/data/sub/../sub/f.txt") == [replica]
    with pytest.raises(InvalidPathError, match="absolute"):
        manager.register_path(A, "relative/path")


# -- rule 2: parents are registered, once ---------------------------------------------------------


async def test_register_path_registers_parent_directories(manager: DefaultDataManager) -> None:
    manager.register_path(A, "/work/job/out/result.csv")
    for parent in ("/work/job/out", "/work/job", "/work", "/"):
        replicas = manager.get_data_locations(parent)
        assert where(replicas) == {("cluster", "node-a", parent)}
        assert replicas[0].data_type is DataType.PRIMARY
    assert manager.get_data_locations("/work/job/out", location_name="node-b") == []


async def test_registering_again_creates_no_duplicates(manager: DefaultDataManager) -> None:
    first = manager.register_path(A, "/w/j/a.txt")
    count = len(manager.mapper)
    assert manager.register_path(A, "/w/j/a.txt") is first
    manager.register_path(A, "/w/j/b.txt")
    assert len(manager.mapper) == count + 1
    assert len(manager.get_data_locations("/w/j")) == 1
    assert len(manager.get_data_locations("/")) == 1


async def test_relpath_is_kept(manager: DefaultDataManager) -> None:
    replica = manager.register_path(A, "/scratch/job42/inputs/a.txt", relpath="inputs/a.txt")
    assert replica.relpath == "inputs/a.txt"
    assert manager.get_data_locations("/scratch/job42/inputs/a.txt")[0].relpath == "inputs/a.txt"


# -- rule 3: relations are symmetric and transitive -----------------------------------------------


async def test_relation_is_symmetric(manager: DefaultDataManager) -> None:
    a = manager.register_path(A, "/a/x")
    c = manager.register_path(C, "/c/y")
    manager.register_relation(a, c)
    assert where(manager.get_data_locations("/a/x")) == where(manager.get_data_locations("/c/y"))
    assert where(manager.get_data_locations("/c/y")) == {
        ("cluster", "node-a", "/a/x"),
        ("cloud", "vm-1", "/c/y"),
    }


async def test_relation_is_transitive(manager: DefaultDataManager) -> None:
    replicas = [manager.register_path(loc, f"/p{i}") for i, loc in enumerate((A, B, C, LOCAL))]
    manager.register_relation(replicas[0], replicas[1])
    manager.register_relation(replicas[2], replicas[3])
    assert len(manager.get_data_locations("/p0")) == 2
    manager.register_relation(replicas[3], replicas[1])
    for index in range(4):
        assert len(manager.get_data_locations(f"/p{index}")) == 4
    manager.register_relation(replicas[0], replicas[3])  # already related: no change
    assert len(manager.get_data_locations("/p2")) == 4


async def test_relation_with_an_unregistered_replica_fails(manager: DefaultDataManager) -> None:
    a = manager.register_path(A, "/a")
    stray = manager.register_path(B, "/b")
    manager.invalidate_location(B, "/b")
    with pytest.raises(UnknownPathError, match="/b"):
        manager.register_relation(a, stray)


async def test_relation_results_exclude_invalid_replicas(manager: DefaultDataManager) -> None:
    a = manager.register_path(A, "/a/x")
    b = manager.register_path(B, "/b/x")
    c = manager.register_path(C, "/c/x")
    manager.register_relation(a, b)
    manager.register_relation(b, c)
    manager.invalidate_location(B, "/b/x")
    assert where(manager.get_data_locations("/a/x")) == {
        ("cluster", "node-a", "/a/x"),
        ("cloud", "vm-1", "/c/x"),
    }
    assert manager.get_data_locations("/b/x") == []


# -- rule 4: invalidation -------------------------------------------------------------------------


async def test_invalidation_marks_the_subtree_on_that_location_only(
    manager: DefaultDataManager,
) -> None:
    inside = [manager.register_path(A, p) for p in ("/d/x", "/d/sub/y", "/d/sub/deep/z")]
    outside = manager.register_path(A, "/d2/x")
    other = manager.register_path(B, "/d/sub/y")
    manager.invalidate_location(A, "/d")
    assert all(replica.data_type is DataType.INVALID for replica in inside)
    for path in ("/d", "/d/x", "/d/sub", "/d/sub/y", "/d/sub/deep", "/d/sub/deep/z"):
        assert manager.get_data_locations(path, location_name="node-a") == []
    assert manager.get_data_locations("/d/sub/y") == [other]
    assert manager.get_data_locations("/d2/x") == [outside]
    assert where(manager.get_data_locations("/", deployment="cluster")) == {
        ("cluster", "node-a", "/"),
        ("cluster", "node-b", "/"),
    }


async def test_invalidated_entries_are_never_returned(manager: DefaultDataManager) -> None:
    manager.register_path(A, "/f")
    manager.invalidate_location(A, "/f")
    assert manager.get_data_locations("/f") == []
    assert manager.get_data_locations("/f", data_type=DataType.INVALID) == []
    manager.register_path(A, "/g", data_type=DataType.INVALID)
    assert manager.get_data_locations("/g") == []


async def test_invalidating_an_unknown_path_is_a_no_op(manager: DefaultDataManager) -> None:
    manager.register_path(A, "/known")
    count = len(manager.mapper)
    manager.invalidate_location(A, "/unknown/path")
    manager.invalidate_location(ExecutionLocation("ghost", "nowhere"), "/known")
    manager.invalidate_location(A, "/known")
    manager.invalidate_location(A, "/known")
    assert len(manager.mapper) == count - 1


async def test_links_to_an_invalidated_entry_become_invalid(manager: DefaultDataManager) -> None:
    target = manager.register_path(A, "/data/d/file")
    link = manager.register_path(A, "/work/link", data_type=DataType.SYMBOLIC_LINK)
    manager.register_relation(target, link)
    below_link = manager.register_path(A, "/work/link/child")
    unrelated_link = manager.register_path(A, "/work/other", data_type=DataType.SYMBOLIC_LINK)
    remote = manager.register_path(C, "/copy/file")
    manager.register_relation(target, remote)
    manager.invalidate_location(A, "/data/d")
    assert link.data_type is DataType.INVALID
    assert below_link.data_type is DataType.INVALID
    assert unrelated_link.data_type is DataType.SYMBOLIC_LINK
    assert manager.get_data_locations("/work/link") == []
    assert manager.get_data_locations("/copy/file") == [remote]


async def test_a_link_survives_when_its_target_is_on_another_location(
    manager: DefaultDataManager,
) -> None:
    """A link points at data on its own location; a replica elsewhere is not its target."""
    local_target = manager.register_path(A, "/t")
    link = manager.register_path(A, "/l", data_type=DataType.SYMBOLIC_LINK)
    elsewhere = manager.register_path(B, "/t")
    manager.register_relation(elsewhere, link)
    manager.register_relation(local_target, link)
    manager.invalidate_location(B, "/t")
    assert link.valid
    manager.invalidate_location(A, "/t")
    assert not link.valid


async def test_a_path_can_be_registered_again_after_invalidation(
    manager: DefaultDataManager,
) -> None:
    old = manager.register_path(A, "/d/f")
    manager.invalidate_location(A, "/d")
    new = manager.register_path(A, "/d/f")
    assert new is not old and new.valid and not old.valid
    assert manager.get_data_locations("/d/f") == [new]
    assert manager.get_data_locations("/d", location_name="node-a")[0].valid


async def test_changing_the_data_type_replaces_the_replica(manager: DefaultDataManager) -> None:
    primary = manager.register_path(A, "/x")
    link = manager.register_path(A, "/x", data_type=DataType.SYMBOLIC_LINK)
    assert primary.data_type is DataType.INVALID
    assert manager.get_data_locations("/x") == [link]


async def test_invalidating_the_root_invalidates_the_whole_location(
    manager: DefaultDataManager,
) -> None:
    replicas = [manager.register_path(A, path) for path in ("/x/y", "/z")]
    kept = manager.register_path(B, "/x/y")
    manager.invalidate_location(A, "/")
    assert not any(replica.valid for replica in replicas)
    assert manager.get_data_locations("/", location_name="node-a") == []
    assert manager.get_data_locations("/x/y") == [kept]
    assert manager.register_path(A, "/x/y").valid


def test_mapper_counts_replicas_without_a_manager() -> None:
    mapper = RemotePathMapper()
    mapper.register(A, "/a/b")
    assert len(mapper) == 3
    assert [r.path for r in mapper.invalidate(A, "/a")] == ["/a", "/a/b"]
    assert len(mapper) == 1


def test_a_path_inside_a_registered_directory_is_answered_by_each_of_its_replicas() -> None:
    mapper = RemotePathMapper()
    on_a = mapper.register(A, "/data/tree")
    on_b = mapper.register(B, "/scratch/copy")
    mapper.register_relation(on_a, on_b)
    mapper.register(C, "/data/tree/sub/f")  # /data/tree is only C's parent directory
    found = {(r.location, r.path) for r in mapper.get("/data/tree/sub/f")}
    assert found == {(A, "/data/tree/sub/f"), (B, "/scratch/copy/sub/f"), (C, "/data/tree/sub/f")}
    # Inside an implicit parent directory alone, nothing is answered.
    assert [(r.location, r.path) for r in mapper.get("/data/tree/other")] == [
        (A, "/data/tree/other"),
        (B, "/scratch/copy/other"),
    ]
    assert mapper.get("/data/elsewhere") == []
    assert mapper.resolve(B, "/scratch/copy/sub/f") is mapper.resolve(B, "/scratch/copy/sub/f")


def test_an_answered_inner_replica_sees_its_invalidation() -> None:
    mapper = RemotePathMapper()
    mapper.register(A, "/d")
    inner = mapper.resolve(A, "/d/x/f")
    assert inner is not None and inner.valid
    assert mapper.invalidate(A, "/d/x") == [inner]  # a hole: gone, and no longer answered
    assert not inner.valid and mapper.get("/d/x/f") == [] and mapper.get("/d/y")
    registered = mapper.register(A, "/d/x")  # registered again: the hole is filled
    assert mapper.resolve(A, "/d/x/f") is not None and registered.valid
    again = mapper.resolve(A, "/d/z")
    assert again is not None
    mapper.invalidate(A, "/d")  # the directory itself
    assert not again.valid and mapper.get("/d/z") == []


def test_registering_an_answered_inner_path_keeps_its_object() -> None:
    mapper = RemotePathMapper()
    mapper.register(A, "/d")
    inner = mapper.resolve(A, "/d/f")
    assert mapper.register(A, "/d/f") is inner
    assert mapper.find(A, "/d/f") is inner and not mapper.implicit(inner)
    root = mapper.find(A, "/")
    assert root is not None and mapper.implicit(root)


async def test_inner_paths_are_sources_and_relations(tmp_path: Path) -> None:
    (tmp_path / "tree" / "sub").mkdir(parents=True)
    (tmp_path / "tree" / "sub" / "f").write_text("inner")
    async with DefaultDataManager() as manager:
        manager.register_path(LOCAL, str(tmp_path / "tree"))
        inner = str(tmp_path / "tree" / "sub" / "f")
        source = await manager.get_source_location(inner, "local")
        assert source is not None and source.path == inner
        await manager.transfer_data(LOCAL, inner, [LOCAL], str(tmp_path / "copy"), writable=True)
        assert (tmp_path / "copy").read_text() == "inner"
        [registered] = manager.get_data_locations(str(tmp_path / "copy"))
        other = manager.register_path(LOCAL, str(tmp_path / "other"))
        manager.register_relation(source, other)  # the answered replica is registered first
        assert manager.mapper.find(LOCAL, inner) is source
        assert {r.path for r in manager.get_data_locations(inner)} == {inner, other.path}
        assert registered.path == str(tmp_path / "copy")
