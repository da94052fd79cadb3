"""A real S3 endpoint for the S3 tests: moto's server on 127.0.0.1, spoken to over HTTP."""

from __future__ import annotations

import logging
import secrets
import socket
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer
from streamflow_data_s3 import S3Connector, S3Options

from streamflow_data import ExecutionLocation

OptionsFactory = Callable[..., S3Options]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """The URL of a moto server running in this process (in a thread), for the session."""
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


def boto_client(endpoint: str) -> Any:
    """A boto3 client of the test endpoint, to look at the bucket from outside."""
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def multipart_uploads(endpoint: str, bucket: str) -> list[str]:
    """The keys of the multipart uploads in progress in ``bucket``."""
    listed = boto_client(endpoint).list_multipart_uploads(Bucket=bucket)
    return [upload["Key"] for upload in listed.get("Uploads", [])]


@pytest.fixture
def bucket(s3_endpoint: str) -> str:
    """A fresh, empty bucket."""
    name = f"sfd-{secrets.token_hex(6)}"
    boto_client(s3_endpoint).create_bucket(Bucket=name)
    return name


@pytest.fixture
def s3_options(s3_endpoint: str, bucket: str) -> OptionsFactory:
    def build(**overrides: object) -> S3Options:
        fields: dict[str, object] = {
            "buckets": [bucket],
            "endpoint_url": s3_endpoint,
            "access_key_id": "testing",
            "secret_access_key": "testing",
            "part_size": 5 * 1024 * 1024,
            "retries": 1,
        }
        fields.update(overrides)
        return S3Options.model_validate(fields)

    return build


@pytest.fixture
async def s3(s3_options: OptionsFactory) -> AsyncIterator[S3Connector]:
    connector = S3Connector(s3_options())
    yield connector
    await connector.close()


@pytest.fixture
def bucket_location(s3: S3Connector) -> ExecutionLocation:
    return s3.locations("s3")[0]
