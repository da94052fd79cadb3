"""Property: whatever the tree, chunk and block sizes and number of destinations, every
destination ends up equal to the source, byte for byte, modes and links included."""

from __future__ import annotations

import asyncio
import os
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamflow_data import DefaultDataManager, TransferSettings
from tests.helpers import Hosts, snapshot

names = st.text(alphabet="abcdefgh", min_size=1, max_size=3)
sizes = st.sampled_from([0, 1, 100, 4095, 4096, 4097, 20_000, 70_000])
modes = st.sampled_from([0o600, 0o640, 0o644, 0o700, 0o755])


@st.composite
def trees(draw: st.DrawFn) -> dict[str, tuple[str, int, int]]:
    """Relative path -> (kind, size or 0, mode); kinds: file, dir, link (to a sibling)."""
    tree: dict[str, tuple[str, int, int]] = {}
    directories = [""]
    for _ in range(draw(st.integers(1, 12))):
        parent = draw(st.sampled_from(directories))
        path = f"{parent}/{draw(names)}" if parent else draw(names)
        if path in tree:
            continue
        kind = draw(st.sampled_from(["file", "file", "dir", "link"]))
        tree[path] = (kind, draw(sizes), draw(modes))
        if kind == "dir":
            directories.append(path)
    return tree


def build(root: Path, tree: dict[str, tuple[str, int, int]]) -> None:
    root.mkdir(parents=True)
    for path, (kind, size, mode) in sorted(tree.items()):
        target = root / path
        if kind == "dir":
            target.mkdir()
        elif kind == "file":
            target.write_bytes(os.urandom(size))
            os.chmod(target, mode)
        else:
            os.symlink(f"../{path}-target", target)
    for path, (kind, _, mode) in tree.items():
        if kind == "dir":
            os.chmod(root / path, mode | 0o700)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    tree=trees(),
    block_size=st.sampled_from([4096, 8192, 65536]),
    blocks_per_chunk=st.integers(1, 4),
    block_count=st.integers(2, 6),
    destinations=st.integers(1, 4),
)
def test_every_destination_equals_the_source(
    tree: dict[str, tuple[str, int, int]],
    block_size: int,
    blocks_per_chunk: int,
    block_count: int,
    destinations: int,
) -> None:
    config = TransferSettings(
        block_size=block_size,
        chunk_size=block_size * blocks_per_chunk,
        block_count=block_count,
        max_concurrent_files=3,
    )
    with tempfile.TemporaryDirectory() as scratch:
        asyncio.run(check(Path(scratch), tree, config, destinations))


async def check(
    scratch: Path, tree: dict[str, tuple[str, int, int]], config: TransferSettings, count: int
) -> None:
    hosts = Hosts(scratch)
    source = hosts.add("src")
    await asyncio.to_thread(build, hosts.path("src", "/data"), tree)
    targets = [hosts.add(f"d{i}") for i in range(count)]
    async with DefaultDataManager(hosts.connectors, settings=config) as manager:
        manager.register_path(source, "/data")
        await manager.transfer_data(source, "/data", targets, "/out/copy")
        assert manager.statistics.buffer_peak_bytes <= config.memory_bound
    expected = await asyncio.to_thread(snapshot, hosts.path("src", "/data"))
    for index in range(count):
        assert await asyncio.to_thread(snapshot, hosts.path(f"d{index}", "/out/copy")) == expected
