"""The S3 connector against moto's server over HTTP: trees, multipart, copies, errors."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from streamflow_data_s3 import S3Connector, S3Options

from streamflow_data import (
    AuthenticationError,
    ConfigurationError,
    DefaultDataManager,
    ExecutionLocation,
    LocationUnreachableError,
    PathNotFoundError,
    PermissionDeniedError,
    TransferError,
    TransferSettings,
    Verification,
    create_connector,
)
from tests.conftest import LOCAL
from tests.helpers import MTIME, LastSnapshot, make_tree, snapshot
from tests.s3.conftest import OptionsFactory, multipart_uploads

MiB = 1024 * 1024


def test_options_are_checked_and_the_plugin_is_found() -> None:
    with pytest.raises(ConfigurationError, match=r"buckets.*part_size"):
        S3Connector.from_options({"buckets": [], "part_size": 1024})
    with pytest.raises(ConfigurationError, match="go together"):
        S3Connector.from_options({"buckets": ["b"], "access_key_id": "only-the-id"})
    connector = create_connector("s3", {"buckets": ["one", "two"]})
    assert isinstance(connector, S3Connector)
    assert [location.name for location in connector.locations("store")] == ["one", "two"]
    assert "hunter2" not in repr(
        S3Options.model_validate(
            {"buckets": ["b"], "access_key_id": "a", "secret_access_key": "hunter2"}
        )
    )


async def test_a_tree_round_trips_with_modes_and_times(
    s3: S3Connector, bucket_location: ExecutionLocation, tmp_path: Path
) -> None:
    source, back = tmp_path / "source", tmp_path / "back"
    await asyncio.to_thread(make_tree, source)
    finished = LastSnapshot()
    async with DefaultDataManager({"s3": s3}, listeners=[finished]) as manager:
        manager.register_path(LOCAL, str(source))
        await manager.transfer_data(LOCAL, str(source), [bucket_location], "/trees/one")
        assert finished.last is not None
        # S3 checked every request's CRC32C as it received it.
        assert finished.last.destinations[0].verification is Verification.RECEIVED
        await manager.transfer_data(bucket_location, "/trees/one", [LOCAL], str(back))
    original, copied = snapshot(source), snapshot(back)
    # S3 stores no links: the link to a file comes back as that file; the dangling one is
    # skipped; everything else, modes and times included, is the same.
    assert copied.pop("rel-link") == ("file", 0o644, original["small.txt"][2], b"hello")
    for link in ("rel-link", "sub/dangling"):
        original.pop(link)
    assert copied == original
    assert copied["sub/script.sh"][1:3] == (0o750, MTIME)


async def test_large_files_go_in_parallel_parts_and_come_back_in_ranges(
    s3_options: OptionsFactory, tmp_path: Path, s3_endpoint: str, bucket: str
) -> None:
    data = os.urandom(23 * MiB + 7)
    (tmp_path / "big").write_bytes(data)
    connector = S3Connector(s3_options(max_concurrency=3))
    location = connector.locations("s3")[0]
    settings = TransferSettings(chunk_size=8 * MiB, block_size=1 * MiB)
    async with DefaultDataManager({"s3": connector}, settings=settings) as manager:
        manager.register_path(LOCAL, str(tmp_path / "big"))
        await manager.transfer_data(LOCAL, str(tmp_path / "big"), [location], "/big")
        head = await connector.store.request(location, "/big", "head_object", Key="big")
        assert head["ContentLength"] == len(data)
        assert "-5" in head["ETag"]  # a multipart object of five 5 MiB parts
        await manager.transfer_data(location, "/big", [LOCAL], str(tmp_path / "back"))
        written = manager.statistics.of(LOCAL).bytes_written
    assert (tmp_path / "back").read_bytes() == data
    assert written == len(data)
    assert multipart_uploads(s3_endpoint, bucket) == []


async def test_a_failed_upload_leaves_no_parts_behind(
    s3: S3Connector, bucket_location: ExecutionLocation, s3_endpoint: str, bucket: str
) -> None:
    writer = await s3.open_writer(bucket_location, "/partial")
    await writer.write(0, os.urandom(11 * MiB))
    await asyncio.sleep(0.2)
    assert multipart_uploads(s3_endpoint, bucket) == ["partial"]
    await writer.abort()
    assert multipart_uploads(s3_endpoint, bucket) == []
    assert not await s3.exists(bucket_location, "/partial")


async def test_an_upload_cancelled_halfway_is_aborted(
    s3_options: OptionsFactory, tmp_path: Path, s3_endpoint: str, bucket: str
) -> None:
    (tmp_path / "big").write_bytes(os.urandom(40 * MiB))
    connector = S3Connector(s3_options(max_concurrency=1))
    location = connector.locations("s3")[0]
    async with DefaultDataManager({"s3": connector}) as manager:
        manager.register_path(LOCAL, str(tmp_path / "big"))
        task = asyncio.create_task(
            manager.transfer_data(LOCAL, str(tmp_path / "big"), [location], "/big")
        )
        for _ in range(400):  # bounded: 20 s
            if multipart_uploads(s3_endpoint, bucket):
                break
            await asyncio.sleep(0.05)
        assert multipart_uploads(s3_endpoint, bucket) == ["big"]
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert multipart_uploads(s3_endpoint, bucket) == []
    assert manager.get_data_locations("/big") == []


async def test_copies_within_the_bucket_move_no_bytes_through_us(
    s3: S3Connector, bucket_location: ExecutionLocation
) -> None:
    await s3.mkdir(bucket_location, "/data")
    await s3.write_file(bucket_location, "/data/a", b"a" * 1000, mode=0o600)
    await s3.write_file(bucket_location, "/data/b", b"b" * 3_000_000)
    async with DefaultDataManager({"s3": s3}) as manager:
        manager.register_path(bucket_location, "/data")
        await manager.transfer_data(
            bucket_location, "/data", [bucket_location], "/copy", writable=True
        )
        totals = manager.statistics.of(bucket_location)
        assert totals.bytes_read == 0
    assert await s3.read_file(bucket_location, "/copy/b") == b"b" * 3_000_000
    assert (await s3.stat(bucket_location, "/copy/a")).mode == 0o600


async def test_missing_buckets_keys_and_endpoints_are_typed(
    s3_options: OptionsFactory, s3: S3Connector, bucket_location: ExecutionLocation
) -> None:
    with pytest.raises(PathNotFoundError, match="missing-key"):
        await s3.read_file(bucket_location, "/missing-key")
    nowhere = S3Connector(s3_options(buckets=["no-such-bucket-here"]))
    try:
        with pytest.raises(PathNotFoundError, match="no such bucket 'no-such-bucket-here'"):
            await nowhere.stat(nowhere.locations("s3")[0], "/x")
    finally:
        await nowhere.close()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    dead = S3Connector(s3_options(endpoint_url=f"http://127.0.0.1:{port}", retries=0))
    try:
        with pytest.raises(LocationUnreachableError):
            await dead.stat(dead.locations("s3")[0], "/x")
    finally:
        await dead.close()


async def test_many_small_objects_are_put_concurrently(
    s3: S3Connector, bucket_location: ExecutionLocation, tmp_path: Path
) -> None:
    tree = tmp_path / "many"
    tree.mkdir()
    for index in range(60):
        (tree / f"f{index:02d}").write_bytes(os.urandom(4096))
    in_flight = 0
    most = 0
    put = s3.store.put

    async def counting(*args: object, **kwargs: object) -> None:
        nonlocal in_flight, most
        in_flight += 1
        most = max(most, in_flight)
        try:
            await put(*args, **kwargs)  # type: ignore[arg-type]
        finally:
            in_flight -= 1

    s3.store.put = counting  # type: ignore[method-assign]
    async with DefaultDataManager({"s3": s3}) as manager:
        manager.register_path(LOCAL, str(tree))
        await manager.transfer_data(LOCAL, str(tree), [bucket_location], "/many")
    assert most > 1
    assert len([e async for e in s3.walk(bucket_location, "/many")]) == 60


@pytest.fixture(scope="module")
def guarded_endpoint() -> Iterator[tuple[str, dict[str, str]]]:
    """A moto server that checks credentials and permissions (its own process: the
    setting is global), with a bucket and a user who may do nothing."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # The first three requests (the set-up below) are let through; later ones are checked.
    environment = dict(os.environ, INITIAL_NO_AUTH_ACTION_COUNT="3")
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=environment,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):  # bounded: 20 s
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.1):
                    break
            except OSError:
                time.sleep(0.1)
        admin = {"aws_access_key_id": "admin", "aws_secret_access_key": "admin"}
        iam = boto3.client("iam", endpoint_url=url, region_name="us-east-1", **admin)
        iam.create_user(UserName="nobody")
        key = iam.create_access_key(UserName="nobody")["AccessKey"]
        boto3.client("s3", endpoint_url=url, region_name="us-east-1", **admin).create_bucket(
            Bucket="guarded"
        )
        yield url, {"id": key["AccessKeyId"], "secret": key["SecretAccessKey"]}
    finally:
        server.terminate()
        server.wait()


@pytest.mark.parametrize(
    ("secret", "error", "message"),
    [
        ("right", PermissionDeniedError, "Access Denied"),
        ("wrong", AuthenticationError, "SignatureDoesNotMatch"),
    ],
)
async def test_denied_access_and_bad_credentials_are_typed(
    guarded_endpoint: tuple[str, dict[str, str]],
    secret: str,
    error: type[Exception],
    message: str,
) -> None:
    url, key = guarded_endpoint
    options = {
        "buckets": ["guarded"],
        "endpoint_url": url,
        "access_key_id": key["id"],
        "secret_access_key": key["secret"] if secret == "right" else "wrong",
        "retries": 0,
    }
    connector = S3Connector.from_options(options)
    try:
        with pytest.raises(error, match=message):
            await connector.read_file(connector.locations("s3")[0], "/anything")
    finally:
        await connector.close()


async def test_objects_beyond_the_copy_limit_are_copied_in_parts(
    s3: S3Connector, bucket_location: ExecutionLocation, s3_endpoint: str, bucket: str
) -> None:
    data = os.urandom(12 * MiB + 3)
    await s3.write_file(bucket_location, "/huge", data, mode=0o640)
    s3.copy_limit, s3.copy_part_size = 6 * MiB, 5 * MiB  # as if it were above 5 GiB
    await s3.copy(bucket_location, "/huge", "/huge-copy", mtime_ns=MTIME, size=len(data))
    assert await s3.read_file(bucket_location, "/huge-copy") == data
    head = await s3.store.request(bucket_location, "/huge-copy", "head_object", Key="huge-copy")
    assert head["ETag"].endswith('-3"')  # three copied parts
    info = await s3.stat(bucket_location, "/huge-copy")
    assert (info.mode, info.mtime_ns) == (0o640, MTIME)
    assert multipart_uploads(s3_endpoint, bucket) == []


async def test_sha256_verification_reads_the_objects_back(
    s3: S3Connector, bucket_location: ExecutionLocation, tmp_path: Path
) -> None:
    data = os.urandom(3 * MiB + 11)
    (tmp_path / "file").write_bytes(data)
    settings = TransferSettings(chunk_size=1 * MiB, block_size=1 * MiB, checksum="sha256")
    async with DefaultDataManager({"s3": s3}, settings=settings) as manager:
        manager.register_path(LOCAL, str(tmp_path / "file"))
        await manager.transfer_data(LOCAL, str(tmp_path / "file"), [bucket_location], "/sha/f")
        assert manager.statistics.of(bucket_location).bytes_read == len(data)
        await manager.transfer_data(bucket_location, "/sha/f", [LOCAL], str(tmp_path / "back"))
        assert not manager.statistics.errors
    assert (tmp_path / "back").read_bytes() == data


async def test_a_commit_with_parts_still_in_flight_adds_no_empty_part(
    s3: S3Connector, bucket_location: ExecutionLocation
) -> None:
    data = os.urandom(10 * MiB)  # exactly two parts, both still being sent at the commit
    writer = await s3.open_writer(bucket_location, "/even")
    async with writer:
        await writer.write(0, data)
        await writer.commit()
    head = await s3.store.request(bucket_location, "/even", "head_object", Key="even")
    assert head["ETag"].endswith('-2"')
    assert await s3.read_file(bucket_location, "/even") == data


async def test_an_unreachable_endpoint_is_retried_once_per_transfer_not_per_request(
    s3_options: OptionsFactory, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Every request of a transfer, and the engine's retries, would wait out botocore's
    back-off for the same refusal: after one request did, the others try once."""
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    connector = S3Connector(s3_options(endpoint_url=f"http://127.0.0.1:{port}", retries=2))
    location = connector.locations("s3")[0]
    (tmp_path / "f").write_text("f")
    caplog.set_level(logging.DEBUG, logger="botocore.retries.standard")
    async with DefaultDataManager({"s3": connector}) as manager:
        manager.register_path(LOCAL, str(tmp_path / "f"))
        with pytest.raises(TransferError):
            await manager.transfer_data(LOCAL, str(tmp_path / "f"), [location], "/f")
    retried = [r for r in caplog.records if r.getMessage().startswith("Retry needed, retrying")]
    assert len(retried) == 2  # one request's two retries, whatever asked after it
