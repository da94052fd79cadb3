"""Suspended multipart uploads continue from the parts S3 holds (ListParts), against moto."""

from __future__ import annotations

import asyncio
import gc
import os
import time
from pathlib import Path
from typing import Any

import pytest
from moto.server import ThreadedMotoServer
from streamflow_data_s3 import S3Connector

from streamflow_data import (
    ConnectorError,
    DefaultDataManager,
    Digest,
    ExecutionLocation,
    LocalConnector,
    PathNotFoundError,
    TransferError,
    TransferProgress,
    TransferSettings,
)
from tests.conftest import LOCAL
from tests.s3.conftest import OptionsFactory, boto_client, free_port, multipart_uploads
from tests.wrappers import WrappingConnector

MiB = 1024 * 1024


def _keys(endpoint: str, bucket: str) -> list[str]:
    listed = boto_client(endpoint).list_objects_v2(Bucket=bucket)
    return [item["Key"] for item in listed.get("Contents", [])]


def _count_parts(connector: S3Connector, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The numbers of the parts ``connector`` uploads from now on."""
    sent: list[int] = []
    upload_part = connector.store.upload_part

    async def counting(
        location: ExecutionLocation, path: str, upload_id: str, number: int, body: bytes
    ) -> dict[str, Any]:
        sent.append(number)
        return await upload_part(location, path, upload_id, number, body)

    monkeypatch.setattr(connector.store, "upload_part", counting)
    return sent


async def _suspended(s3: S3Connector, location: ExecutionLocation, data: bytes, given: int) -> str:
    """Write the first ``given`` bytes of ``data`` block by block, suspend; the token."""
    writer = await s3.open_writer(location, "/big", mtime_ns=1_600_000_000 * 10**9)
    for offset in range(0, given, MiB):
        await writer.write(offset, data[offset : min(offset + MiB, given)])
    token = writer.resume_token
    assert token is not None
    await writer.suspend()
    return token


async def test_a_suspended_upload_continues_from_the_parts_s3_holds(
    s3: S3Connector,
    bucket_location: ExecutionLocation,
    s3_endpoint: str,
    bucket: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    data = os.urandom(14 * MiB + 5)
    token = await _suspended(s3, bucket_location, data, 12 * MiB)  # 2 parts and 2 MiB
    assert multipart_uploads(s3_endpoint, bucket) == ["big"]
    assert _keys(s3_endpoint, bucket) == [token.lstrip("/")]  # the hidden marker only
    sent = _count_parts(s3, monkeypatch)
    writer = await s3.resume_writer(bucket_location, "/big", token, mtime_ns=1_600_000_000 * 10**9)
    async with writer:
        await writer.write(12 * MiB, data[12 * MiB :])
        await writer.commit(Digest.of(data))
    assert sent == [3]  # parts 1 and 2 were reused, not sent again
    assert await s3.read_file(bucket_location, "/big") == data
    assert (await s3.stat(bucket_location, "/big")).mtime_ns == 1_600_000_000 * 10**9
    assert multipart_uploads(s3_endpoint, bucket) == []
    assert _keys(s3_endpoint, bucket) == ["big"]


async def test_an_upload_stopped_without_suspending_is_discarded_when_resumed(
    s3: S3Connector, bucket_location: ExecutionLocation, s3_endpoint: str, bucket: str
) -> None:
    data = os.urandom(12 * MiB)
    writer = await s3.open_writer(bucket_location, "/big")
    await writer.write(0, data)
    await writer.digest()  # the parts are on S3; then the process "dies": no suspend
    token = writer.resume_token
    assert token is not None and multipart_uploads(s3_endpoint, bucket) == ["big"]
    with pytest.raises(PathNotFoundError, match="not suspended"):
        await s3.resume_writer(bucket_location, "/big", token)
    assert multipart_uploads(s3_endpoint, bucket) == []  # nothing orphaned
    assert _keys(s3_endpoint, bucket) == []


async def test_a_resume_whose_parts_are_gone_starts_from_zero(
    s3: S3Connector, bucket_location: ExecutionLocation, s3_endpoint: str, bucket: str
) -> None:
    data = os.urandom(11 * MiB)
    token = await _suspended(s3, bucket_location, data, len(data))
    client = boto_client(s3_endpoint)
    upload = client.list_multipart_uploads(Bucket=bucket)["Uploads"][0]
    client.abort_multipart_upload(Bucket=bucket, Key="big", UploadId=upload["UploadId"])
    with pytest.raises(PathNotFoundError, match="part 1 is not on S3"):
        await s3.resume_writer(bucket_location, "/big", token)
    assert _keys(s3_endpoint, bucket) == []
    with pytest.raises(PathNotFoundError):  # the marker went with it
        await s3.resume_writer(bucket_location, "/big", token)


async def test_a_resumed_writer_rewinds_to_where_the_engine_recorded(
    s3: S3Connector, bucket_location: ExecutionLocation
) -> None:
    data = os.urandom(14 * MiB)
    token = await _suspended(s3, bucket_location, data, 13 * MiB)  # 2 parts and 3 MiB
    writer = await s3.resume_writer(bucket_location, "/big", token)
    async with writer:
        with pytest.raises(ConnectorError, match="follow each other"):
            await writer.write(9 * MiB, data[9 * MiB :])  # inside a part already sent
        await writer.write(11 * MiB, data[11 * MiB :])  # within the bytes kept: fine
        await writer.commit(Digest.of(data))
    assert await s3.read_file(bucket_location, "/big") == data


async def test_a_stopped_transfer_to_s3_resumes_from_the_uploaded_parts(
    s3_options: OptionsFactory, tmp_path: Path, s3_endpoint: str, bucket: str
) -> None:
    data = os.urandom(40 * MiB)
    (tmp_path / "big").write_bytes(data)
    catalog = str(tmp_path / "catalog.sqlite")
    settings = TransferSettings(chunk_size=8 * MiB, block_size=1 * MiB)
    connector = S3Connector(s3_options(max_concurrency=1))
    location = connector.locations("s3")[0]
    shutdown = asyncio.Event()
    first = DefaultDataManager(
        {"s3": connector}, catalog=catalog, settings=settings, shutdown=shutdown
    )
    async with first:
        first.register_path(LOCAL, str(tmp_path / "big"))
        task = asyncio.create_task(
            first.transfer_data(LOCAL, str(tmp_path / "big"), [location], "/big")
        )
        for _ in range(400):  # bounded: 20 s
            if len(_parts(s3_endpoint, bucket)) >= 2:
                break
            await asyncio.sleep(0.05)
        shutdown.set()
        with pytest.raises(Exception):  # noqa: B017,PT011 - stopped: the engine says how
            await task
    assert multipart_uploads(s3_endpoint, bucket) == ["big"]  # kept for the next run
    finished: list[TransferProgress] = []

    def remember(progress: TransferProgress) -> None:
        if progress.finished:
            finished.append(progress)

    second = DefaultDataManager(
        {"s3": S3Connector(s3_options())},
        catalog=catalog,
        settings=settings,
        listeners=[remember],
    )
    async with second:
        second.register_path(LOCAL, str(tmp_path / "big"))
        await second.transfer_data(LOCAL, str(tmp_path / "big"), [location], "/big")
    skipped = finished[-1].destinations[0].bytes_skipped
    assert skipped >= 10 * MiB  # at least the two parts seen on S3 were not sent again
    assert finished[-1].bytes_moved + skipped == len(data)
    assert boto_client(s3_endpoint).get_object(Bucket=bucket, Key="big")["Body"].read() == data
    assert multipart_uploads(s3_endpoint, bucket) == []
    assert _keys(s3_endpoint, bucket) == ["big"]


def _parts(endpoint: str, bucket: str) -> list[int]:
    client = boto_client(endpoint)
    numbers: list[int] = []
    for upload in client.list_multipart_uploads(Bucket=bucket).get("Uploads", []):
        listed = client.list_parts(Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"])
        numbers.extend(part["PartNumber"] for part in listed.get("Parts", []))
    return numbers


async def test_an_interrupted_tree_upload_keeps_its_finished_files_for_the_rerun(
    s3_options: OptionsFactory, tmp_path: Path, s3_endpoint: str, bucket: str
) -> None:
    source = tmp_path / "tree"
    source.mkdir()
    files = {f"f{number:03}": os.urandom(3 * MiB) for number in range(12)}
    for name, data in files.items():
        (source / name).write_bytes(data)
    catalog = str(tmp_path / "catalog.sqlite")
    settings = TransferSettings(block_size=1 * MiB, max_concurrent_files=2)
    shutdown = asyncio.Event()

    def stop_halfway(progress: TransferProgress) -> None:
        if progress.destinations[0].files_done >= 4:
            shutdown.set()

    connector = S3Connector(s3_options())
    location = connector.locations("s3")[0]
    first = DefaultDataManager(
        {"s3": connector}, catalog=catalog, settings=settings, shutdown=shutdown,
        listeners=[stop_halfway],
    )  # fmt: skip
    async with first:
        first.register_path(LOCAL, str(source))
        with pytest.raises(Exception):  # noqa: B017,PT011 - stopped: the engine says how
            await first.transfer_data(LOCAL, str(source), [location], "/tree")
        [record] = await first.transfers()
        states = await first.dump_state(record.id)
    valid = sorted(line.split(",")[0] for line in states.splitlines() if ",valid," in line)
    assert 4 <= len(valid) < len(files)
    # What the journal calls valid is in the bucket, whole.
    client = boto_client(s3_endpoint)
    for name in valid:
        assert client.get_object(Bucket=bucket, Key=f"tree/{name}")["Body"].read() == files[name]
    finished: list[TransferProgress] = []

    def remember(progress: TransferProgress) -> None:
        if progress.finished:
            finished.append(progress)

    second = DefaultDataManager(
        {"s3": S3Connector(s3_options())}, catalog=catalog, settings=settings,
        listeners=[remember],
    )  # fmt: skip
    async with second:
        second.register_path(LOCAL, str(source))
        await second.transfer_data(LOCAL, str(source), [location], "/tree")
    # Not sent again: the valid files, and any whose upload completed as the run stopped.
    assert finished[-1].destinations[0].files_skipped >= len(valid)
    for name, data in files.items():
        assert client.get_object(Bucket=bucket, Key=f"tree/{name}")["Body"].read() == data


async def test_an_object_replaced_while_read_is_read_again(
    s3: S3Connector, bucket_location: ExecutionLocation, s3_endpoint: str, bucket: str,
    tmp_path: Path,
) -> None:  # fmt: skip
    client = boto_client(s3_endpoint)
    await asyncio.to_thread(client.put_object, Bucket=bucket, Key="big", Body=os.urandom(3 * MiB))
    stalled = WrappingConnector(str(tmp_path / "here"), stall_writes=True)
    await asyncio.to_thread((tmp_path / "here").mkdir)
    here = ExecutionLocation("here", "localhost", local=True)
    settings = TransferSettings(chunk_size=1 * MiB, block_size=256 * 1024, max_retries=1)
    async with DefaultDataManager({"s3": s3, "here": stalled}, settings=settings) as manager:
        manager.register_path(bucket_location, "/big")
        copy = asyncio.create_task(manager.transfer_data(bucket_location, "/big", [here], "/c"))
        await asyncio.wait_for(stalled.write_started.wait(), 10)
        newer = os.urandom(3 * MiB)
        await asyncio.to_thread(client.put_object, Bucket=bucket, Key="big", Body=newer)
        stalled.release.set()
        await copy
        assert manager.statistics.retries == 1
    assert await asyncio.to_thread((tmp_path / "here" / "c").read_bytes) == newer


async def test_parts_failing_together_when_the_endpoint_dies_are_all_read(
    s3_options: OptionsFactory, tmp_path: Path
) -> None:
    """Every part in flight fails when the endpoint goes: the transfer reports the first,
    and asyncio has no failed part left to log as "never retrieved". (aiohttp's own body
    task may be left so: the command line drops that record, see ``_not_noise``.)"""
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    boto_client(endpoint).create_bucket(Bucket="dying")
    unread: list[str] = []
    asyncio.get_running_loop().set_exception_handler(
        lambda _, context: unread.append(repr(context.get("future")))
    )
    source = tmp_path / "big"
    await asyncio.to_thread(source.write_bytes, os.urandom(160 << 20))
    s3 = S3Connector(s3_options(buckets=["dying"], endpoint_url=endpoint, retries=0))
    [store] = s3.locations("s3")

    def stop_once_parts_fly() -> None:
        for _ in range(600):  # bounded: 30 s
            if multipart_uploads(endpoint, "dying"):
                time.sleep(0.2)
                break
            time.sleep(0.05)
        server.stop()

    try:
        async with DefaultDataManager({"local": LocalConnector(), "s3": s3}) as manager:
            manager.register_path(LOCAL, str(source))
            stopping = asyncio.create_task(asyncio.to_thread(stop_once_parts_fly))
            with pytest.raises(TransferError):
                await manager.transfer_data(LOCAL, str(source), [store], "/x/big")
            await stopping
    finally:
        server.stop()
        await s3.close()
    gc.collect()  # a dropped task logs its unread failure when collected
    await asyncio.sleep(0)
    assert [task for task in unread if "ClientRequest.write_bytes" not in task] == []
