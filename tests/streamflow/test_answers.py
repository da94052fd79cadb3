"""Ours answers StreamFlow as StreamFlow's own data manager does.

Each scenario (the ones StreamFlow tests its data manager with) runs twice on real
StreamFlow contexts, local deployment and two SSH deployments on real sshd: once with
StreamFlow's ``DefaultDataManager``, once with ours, each under a directory of its own.
The replicas each answers (paths, relpaths, types, availability, order) and the files
each wrote must be the same.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import random
import tempfile
from collections.abc import Awaitable, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from streamflow.core.data import DataLocation, DataType
from streamflow.core.exception import WorkflowExecutionException

from tests.ssh.sshd import SSHServer, client_key, owned_directory, start_server
from tests.streamflow.conftest import LOCAL, MANAGERS, Contexts, ssh_location

Answer = list[tuple[str, str, str, str, str, bool]]
Scenario = Callable[[Any, Path, Path], Awaitable[dict[str, object]]]


def answer(replicas: Sequence[DataLocation], *roots: Path) -> Answer:
    """The replicas, with each manager's own directories written ``ROOT``/``REMOTE``."""

    def plain(path: str) -> str:
        for name, root in zip(("ROOT", "REMOTE"), roots, strict=False):
            path = path.replace(str(root), name)
        return path

    return [
        (
            r.deployment,
            r.name,
            plain(r.path),
            plain(r.relpath),
            r.data_type.name,
            r.available.is_set(),
        )
        for r in replicas
    ]


def tree(path: Path) -> dict[str, str]:
    """Every entry below ``path``: a file's SHA-256, a link's target, ``dir``."""
    found: dict[str, str] = {}
    for entry in sorted(path.rglob("*")):
        name = str(entry.relative_to(path))
        if entry.is_symlink():
            found[name] = "-> " + os.readlink(entry).replace(str(path), "ROOT")
        elif entry.is_dir():
            found[name] = "dir"
        else:
            found[name] = hashlib.sha256(entry.read_bytes()).hexdigest()
    return found


async def both(
    contexts: Contexts, base: Path, remote_dir: Path, scenario: Scenario
) -> list[dict[str, object]]:
    """Run ``scenario`` with each manager, in directories of its own (local and remote)."""
    results = []
    for manager in MANAGERS:
        context = await contexts.open(manager)
        root = base / manager / "work"  # the same name: parents' relpaths hold it
        root.mkdir(parents=True)
        remote = owned_directory(owned_directory(remote_dir / manager) / "work")
        results.append(await scenario(context, root, remote))
        results[-1]["tree"] = await asyncio.to_thread(tree, root)
        results[-1]["remote tree"] = await asyncio.to_thread(tree, remote)
    return results


def _files(root: Path) -> Path:
    """A source tree: a file, a directory with a subdirectory, a link to the file."""
    data = root / "data"
    (data / "dir" / "sub").mkdir(parents=True)
    (data / "file.txt").write_bytes(b"hello\n")
    (data / "dir" / "a").write_bytes(random.Random(7).randbytes(3000))
    (data / "dir" / "sub" / "b").write_bytes(b"b" * 100)
    (data / "link").symlink_to(data / "file.txt")
    return data


async def test_local_file_directory_and_link(
    contexts: Contexts, tmp_path: Path, remote_dir: Path
) -> None:
    """Local to local: not writable, a link to the source; writable, a copy; a symlink
    source is followed."""

    async def scenario(context: Any, root: Path, remote: Path) -> dict[str, object]:
        data = await asyncio.to_thread(_files, root)
        manager = context.data_manager
        for name in ("file.txt", "dir"):
            manager.register_path(LOCAL, str(data / name), relpath=name)
        (root / "out").mkdir()
        await manager.transfer_data(
            LOCAL, str(data / "file.txt"), [LOCAL], str(root / "out" / "ro")
        )
        await manager.transfer_data(
            LOCAL, str(data / "dir"), [LOCAL], str(root / "out" / "rw"), writable=True
        )
        await manager.transfer_data(LOCAL, str(data / "link"), [LOCAL], str(root / "out"))
        return {
            path: answer(manager.get_data_locations(str(root / path)), root)
            for path in ("data", "data/file.txt", "out", "out/ro", "out/rw", "out/file.txt")
        }

    ours_default, ours = await both(contexts, tmp_path, remote_dir, scenario)
    assert ours == ours_default
    assert ours["tree"]["out/ro"].startswith("-> ")  # type: ignore[index]


async def test_local_ssh_round_trip(
    contexts: Contexts, tmp_path: Path, remote_dir: Path, ssh_servers: list[SSHServer]
) -> None:
    """A directory to an SSH host and back, a file from one SSH host to the other."""
    host_a, host_b = (ssh_location(f"ssh-{n}", s) for n, s in zip("ab", ssh_servers, strict=True))

    async def scenario(context: Any, root: Path, remote: Path) -> dict[str, object]:
        data = await asyncio.to_thread(_files, root)
        manager = context.data_manager
        for name in ("file.txt", "dir"):
            manager.register_path(LOCAL, str(data / name), relpath=name)
        await manager.transfer_data(LOCAL, str(data / "dir"), [host_a], str(remote / "on-a"))
        await manager.transfer_data(host_a, str(remote / "on-a"), [LOCAL], str(root / "back"))
        await manager.transfer_data(
            LOCAL, str(data / "file.txt"), [host_a], str(remote / "f-a"), writable=True
        )
        await manager.transfer_data(host_a, str(remote / "f-a"), [host_b], str(remote / "f-b"))
        return {
            "on-a": answer(manager.get_data_locations(str(remote / "on-a")), root, remote),
            "dir": answer(manager.get_data_locations(str(data / "dir")), root, remote),
            "back": answer(manager.get_data_locations(str(root / "back")), root, remote),
            "f-b": answer(manager.get_data_locations(str(remote / "f-b")), root, remote),
            "source for b": answer(
                [await manager.get_source_location(str(remote / "f-b"), "ssh-b")], root, remote
            ),
        }

    default, ours = await both(contexts, tmp_path, remote_dir, scenario)
    assert ours == default
    # Every byte went through our engine (the SSH plugin), and was counted there.
    statistics = contexts.opened[-1].data_manager.engine.statistics
    written = {loc.deployment: s.bytes_written for loc, s in statistics.locations.items()}
    assert written["ssh-a"] == 3000 + 100 + 6 and written["ssh-b"] == 6
    # The local directory is a replica of the copy on host A: "back" links to it.
    assert ours["tree"]["back"] == "-> ROOT/data/dir"  # type: ignore[index]
    assert ours["remote tree"]["on-a/sub/b"] == ours["tree"]["data/dir/sub/b"]  # type: ignore[index]


async def test_a_file_into_a_missing_directory_is_written_once(
    contexts: Contexts, tmp_path: Path, remote_dir: Path, ssh_servers: list[SSHServer]
) -> None:
    """A file copied into a directory that is not there yet: the directory is made first,
    as StreamFlow's manager makes it, and ours writes the file once (no write refused for
    want of its directory, then sent again)."""
    host_a = ssh_location("ssh-a", ssh_servers[0])

    async def scenario(context: Any, root: Path, remote: Path) -> dict[str, object]:
        data = await asyncio.to_thread(_files, root)
        manager = context.data_manager
        manager.register_path(LOCAL, str(data / "file.txt"), relpath="file.txt")
        target = remote / "new" / "deeper" / "f.txt"
        await manager.transfer_data(LOCAL, str(data / "file.txt"), [host_a], str(target))
        return {"f": answer(manager.get_data_locations(str(target)), root, remote)}

    default, ours = await both(contexts, tmp_path, remote_dir, scenario)
    assert ours == default
    assert ours["remote tree"]["new/deeper/f.txt"] == ours["tree"]["data/file.txt"]  # type: ignore[index]
    engine = contexts.opened[-1].data_manager.engine
    [node] = engine.locations("ssh-a")
    # The directory made, the destination looked at, the file written: one command each.
    assert engine.connector(node).commands_run(node) == 3


@pytest.fixture
def separate_host(ssh_base: Path, remote_dir: Path) -> Iterator[SSHServer]:
    """An sshd whose sessions see a directory of their own at ``remote_dir`` (a second
    host's disk; as root only: a mount namespace)."""
    if os.geteuid() != 0:
        pytest.skip("a host with a disk of its own needs a mount namespace (root)")
    own = owned_directory(Path(tempfile.mkdtemp(dir=ssh_base)) / "own")
    own.parent.chmod(0o755)
    directory = ssh_base / f"separate-{own.parent.name}"
    server = start_server("separate", directory, client_key(ssh_base), own_view=(remote_dir, own))
    yield server
    server.stop()


async def test_a_fan_out_to_two_nodes_reads_the_source_once(
    tmp_path: Path, remote_dir: Path, ssh_servers: list[SSHServer], separate_host: SSHServer
) -> None:
    """A step on two nodes of one deployment: one transfer to both, the same replicas as
    StreamFlow's manager, and ours reads the source once for the two."""
    servers = [ssh_servers[0], separate_host]
    nodes = [ssh_location("ssh-both", server) for server in servers]

    async def scenario(context: Any, root: Path, remote: Path) -> dict[str, object]:
        data = await asyncio.to_thread(_files, root)
        manager = context.data_manager
        manager.register_path(LOCAL, str(data / "dir"), relpath="dir")
        target = remote / "fan"
        await manager.transfer_data(LOCAL, str(data / "dir"), nodes, str(target))
        return {"fan": answer(manager.get_data_locations(str(target)), root, remote)}

    contexts = Contexts(tmp_path, servers)
    try:
        default, ours = await both(contexts, tmp_path, remote_dir, scenario)
        statistics = contexts.opened[-1].data_manager.engine.statistics
    finally:
        await contexts.close()
    assert ours == default
    fan = ours["fan"]
    assert isinstance(fan, list) and [e[0] for e in fan] == ["ssh-both", "ssh-both", "__LOCAL__"]
    moved = {str(loc): s for loc, s in statistics.locations.items()}
    assert moved["__LOCAL__/localhost"].bytes_read == 3000 + 100
    assert [moved[f"ssh-both/127.0.0.1_{s.port}"].bytes_written for s in servers] == [3100] * 2


async def test_invalidating_the_root_and_registering_parents(
    contexts: Contexts, tmp_path: Path, remote_dir: Path
) -> None:
    """Parents registered with what remains of the relpath; ``/`` invalidated on one
    location leaves the others' replicas."""
    other = type(LOCAL)(name="node", deployment="elsewhere")

    async def scenario(context: Any, root: Path, remote: Path) -> dict[str, object]:
        manager = context.data_manager
        deep = root / "a" / "b" / "c.txt"
        manager.register_path(LOCAL, str(deep), relpath="b/c.txt")
        manager.register_path(other, str(deep), data_type=DataType.PRIMARY)
        names = ("a/b/c.txt", "a/b", "a", ".")
        before = {
            name: answer(manager.get_data_locations(str(root / name)), root) for name in names
        }
        manager.invalidate_location(LOCAL, "/")
        after = {name: answer(manager.get_data_locations(str(root / name)), root) for name in names}
        return {"before": before, "after": after}

    default, ours = await both(contexts, tmp_path, remote_dir, scenario)
    assert ours["before"] == default["before"]
    assert ours["after"] == default["after"]
    assert ("__LOCAL__", "__LOCAL__", "ROOT/a/b", "b", "PRIMARY", True) in ours["before"]["a/b"]  # type: ignore[index]
    assert [entry[0] for entry in ours["after"]["a/b/c.txt"]] == ["elsewhere"]  # type: ignore[index]


async def test_a_failed_copy_raises_streamflows_error_and_wakes_waiters(
    contexts: Contexts, tmp_path: Path, ssh_servers: list[SSHServer], remote_dir: Path
) -> None:
    """A destination the host refuses: StreamFlow's own exception type, and the copy's
    replica is INVALID and available, so that nothing waits on it for ever (StreamFlow's
    own manager leaves it PRIMARY and never available)."""
    context = await contexts.open(MANAGERS[1])
    manager = context.data_manager
    (tmp_path / "file").write_bytes(b"data")
    manager.register_path(LOCAL, str(tmp_path / "file"), relpath="file")
    host = ssh_location("ssh-a", ssh_servers[0])
    closed = owned_directory(remote_dir / "closed")
    closed.chmod(0o555)
    target = str(closed / "file")
    with pytest.raises(WorkflowExecutionException, match="denied"):
        await manager.transfer_data(LOCAL, str(tmp_path / "file"), [host], target)
    assert manager.get_data_locations(target, deployment="ssh-a") == []
    source = await asyncio.wait_for(manager.get_source_location(target, "ssh-a"), 5)
    assert source is not None and source.path == str(tmp_path / "file")  # its relative


async def test_a_deployment_streamflow_does_not_know_is_its_error(
    contexts: Contexts, tmp_path: Path
) -> None:
    """A destination on a deployment StreamFlow has no connector for: StreamFlow's
    exception naming it, and no replica left waiting."""
    context = await contexts.open(MANAGERS[1])
    manager = context.data_manager
    (tmp_path / "file").write_bytes(b"data")
    manager.register_path(LOCAL, str(tmp_path / "file"), relpath="file")
    nowhere = type(LOCAL)(name="node", deployment="never-deployed")
    with pytest.raises(WorkflowExecutionException, match="never-deployed"):
        await manager.transfer_data(LOCAL, str(tmp_path / "file"), [nowhere], "/srv/file")
    assert manager.get_data_locations("/srv/file", deployment="never-deployed") == []
