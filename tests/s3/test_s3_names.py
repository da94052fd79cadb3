"""Keys of a bucket cross a trust boundary: one that no file path can hold is refused."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
from streamflow_data_s3 import S3Connector

from streamflow_data import DefaultDataManager, ExecutionLocation, TransferError, UnsafePathError
from tests.conftest import LOCAL
from tests.s3.conftest import OptionsFactory, boto_client, multipart_uploads


@pytest.mark.parametrize(
    ("key", "fault"),
    [
        ("data/../../escaped", "'..' component"),
        ("data/./dot", "'.' component"),
        ("data/a//b", "empty component"),
    ],
)
async def test_a_key_no_path_can_hold_fails_the_copy_before_anything_is_written(
    s3: S3Connector,
    bucket_location: ExecutionLocation,
    s3_endpoint: str,
    tmp_path: Path,
    key: str,
    fault: str,
) -> None:
    client = boto_client(s3_endpoint)
    for name in ("data/ok.txt", key):
        await asyncio.to_thread(
            client.put_object, Bucket=bucket_location.name, Key=name, Body=b"payload"
        )
    destination = tmp_path / "a" / "b" / "dst"
    destination.parent.mkdir(parents=True)
    async with DefaultDataManager({"s3": s3}) as manager:
        manager.register_path(bucket_location, "/data")
        with pytest.raises(TransferError) as caught:
            await manager.transfer_data(bucket_location, "/data", [LOCAL], str(destination))
    (failure,) = caught.value.failures
    assert isinstance(failure.cause, UnsafePathError) and not failure.cause.retryable
    # The message names the location and the key as it is in the bucket.
    assert f"'/{key}' on s3/{bucket_location.name}" in str(failure.cause)
    assert fault in str(failure.cause)
    # Nothing anywhere: not the destination, not beside it.
    assert await asyncio.to_thread(os.listdir, tmp_path / "a") == ["b"]
    assert await asyncio.to_thread(os.listdir, tmp_path / "a" / "b") == []


async def test_what_interrupted_uploads_left_is_discarded_when_the_destination_succeeds(
    s3_options: OptionsFactory, s3_endpoint: str, bucket: str, tmp_path: Path
) -> None:
    client = boto_client(s3_endpoint)
    # An upload whose writer died with the endpoint: its upload and its marker were left.
    orphan = await asyncio.to_thread(client.create_multipart_upload, Bucket=bucket, Key="dir/blob")
    marker = "dir/.blob.0123456789ab.sfd-part"
    await asyncio.to_thread(client.put_object, Bucket=bucket, Key=marker, Body=b"{}")
    # And one beside another file, never completed: never copied as data either.
    other = "dir/.other.0123456789ab.sfd-part"
    await asyncio.to_thread(client.put_object, Bucket=bucket, Key=other, Body=b"{}")
    data = os.urandom(12 << 20)  # more than one 5 MiB part: a multipart upload
    (tmp_path / "blob").write_bytes(data)
    connector = S3Connector(s3_options())
    location = connector.locations("s3")[0]
    async with DefaultDataManager({"s3": connector}) as manager:
        manager.register_path(LOCAL, str(tmp_path / "blob"))
        await manager.transfer_data(LOCAL, str(tmp_path / "blob"), [location], "/dir/blob")
        assert multipart_uploads(s3_endpoint, bucket) == []
        keys = [item["Key"] for item in client.list_objects_v2(Bucket=bucket)["Contents"]]
        assert marker not in keys and orphan["UploadId"]
        manager.register_path(location, "/dir")
        await manager.transfer_data(location, "/dir", [LOCAL], str(tmp_path / "back"))
    assert await asyncio.to_thread(os.listdir, tmp_path / "back") == ["blob"]
