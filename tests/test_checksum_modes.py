"""The engine's ``checksum`` setting: CRC32C (default), SHA-256 read back, or none.

The storage below lies where the test says so: ``unverified_commits`` publishes without
checking the expected digest, as a broken storage would, and ``corrupt_write_numbers``
flips a byte of those writes.
"""

from __future__ import annotations

import asyncio
import os

import pytest

from streamflow_data import (
    ChecksumMismatchError,
    ConfigurationError,
    DefaultDataManager,
    TransferError,
    TransferSettings,
)
from tests.helpers import Hosts, make_tree, snapshot

KiB = 1024
SMALL = TransferSettings(chunk_size=256 * KiB, block_size=64 * KiB, block_count=8, retry_delay=0.01)
SIZE = 700_001


async def put(hosts: Hosts, path: str, size: int = SIZE) -> bytes:
    data = os.urandom(size)
    await asyncio.to_thread(hosts.path("src", path).write_bytes, data)
    return data


async def read(hosts: Hosts, host: str, path: str) -> bytes:
    return await asyncio.to_thread(hosts.path(host, path).read_bytes)


def test_the_setting_takes_three_values() -> None:
    assert TransferSettings().checksum == "crc32c"
    assert not TransferSettings(checksum="none").verify_writes
    with pytest.raises(ConfigurationError, match="checksum: Input should be 'crc32c', 'sha256'"):
        TransferSettings(checksum="md5")  # type: ignore[arg-type]


async def test_crc32c_relies_on_the_storage_checking_what_it_stored(hosts: Hosts) -> None:
    """The default check is the storage's: one that publishes unchecked is not caught."""
    source = hosts.add("src")
    data = await put(hosts, "/big.bin")
    target = hosts.add("dst", unverified_commits=True, corrupt_write_numbers=frozenset({2}))
    async with DefaultDataManager(hosts.connectors, settings=SMALL) as manager:
        manager.register_path(source, "/big.bin")
        await manager.transfer_data(source, "/big.bin", [target], "/copy.bin")
    assert await read(hosts, "dst", "/copy.bin") != data


@pytest.mark.parametrize("size", [SIZE, 5000], ids=["chunked", "small"])
async def test_sha256_reads_every_copy_back_and_removes_a_bad_one(hosts: Hosts, size: int) -> None:
    source = hosts.add("src")
    data = await put(hosts, "/file.bin", size)
    good = hosts.add("good")
    bad = hosts.add("bad", unverified_commits=True, corrupt_write_numbers=frozenset({1}))
    settings = SMALL.replace(checksum="sha256")
    async with DefaultDataManager(hosts.connectors, settings=settings) as manager:
        manager.register_path(source, "/file.bin")
        with pytest.raises(TransferError) as caught:
            await manager.transfer_data(source, "/file.bin", [good, bad], "/copy.bin")
        [failure] = caught.value.failures
        assert failure.location == bad
        assert isinstance(failure.cause, ChecksumMismatchError)
        assert "sha256" in str(failure.cause) and "removed" in str(failure.cause)
        assert {r.deployment for r in manager.get_data_locations("/copy.bin")} == {"good", "src"}
        assert manager.statistics.errors["ChecksumMismatchError"] == 1
    assert await read(hosts, "good", "/copy.bin") == data
    assert not hosts.path("bad", "/copy.bin").exists()
    assert hosts.connectors["src"].bytes_read == 2 * size  # the copy, then the check
    assert hosts.connectors["good"].bytes_read == size  # read back once


async def test_sha256_checks_a_tree_before_it_is_published(hosts: Hosts) -> None:
    source = hosts.add("src")
    await asyncio.to_thread(make_tree, hosts.path("src", "/tree"))
    good = hosts.add("good")
    bad = hosts.add("bad", unverified_commits=True, corrupt_write_numbers=frozenset({3}))
    settings = SMALL.replace(checksum="sha256")
    async with DefaultDataManager(hosts.connectors, settings=settings) as manager:
        manager.register_path(source, "/tree")
        with pytest.raises(TransferError) as caught:
            await manager.transfer_data(source, "/tree", [good, bad], "/copy")
        assert [f.location for f in caught.value.failures] == [bad]
    assert snapshot(hosts.path("good", "/copy")) == snapshot(hosts.path("src", "/tree"))
    assert os.listdir(hosts.path("bad", "/")) == []  # nothing published, no staging left


async def test_sha256_passes_good_copies(hosts: Hosts) -> None:
    source = hosts.add("src")
    data = await put(hosts, "/big.bin")
    targets = [hosts.add("d0"), hosts.add("d1")]
    settings = SMALL.replace(checksum="sha256")
    async with DefaultDataManager(hosts.connectors, settings=settings) as manager:
        manager.register_path(source, "/big.bin")
        await manager.transfer_data(source, "/big.bin", targets, "/copy.bin")
        assert not manager.statistics.errors
    for host in ("d0", "d1"):
        assert await read(hosts, host, "/copy.bin") == data
    assert hosts.connectors["src"].bytes_read == 2 * SIZE  # hashed once for both copies


async def test_none_computes_and_compares_nothing(hosts: Hosts) -> None:
    """Without checksums a corrupted write is published: the storage is trusted."""
    source = hosts.add("src")
    data = await put(hosts, "/big.bin")
    target = hosts.add("dst", corrupt_write_numbers=frozenset({2}))
    settings = SMALL.replace(checksum="none")
    async with DefaultDataManager(hosts.connectors, settings=settings) as manager:
        manager.register_path(source, "/big.bin")
        await manager.transfer_data(source, "/big.bin", [target], "/copy.bin")
        assert not manager.statistics.errors
    copied = await read(hosts, "dst", "/copy.bin")
    assert len(copied) == len(data) and copied != data
