"""What each upload request carries for the server to check, seen on the wire.

The connector talks to moto through a small HTTP relay on 127.0.0.1 that records every
request's headers and can alter the ETag a part's answer carries, as a server storing
other bytes than those sent would answer.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import aiohttp
import pytest
from aiohttp import web
from streamflow_data_s3 import S3Connector
from streamflow_data_s3.parts import PartBody, PartBuffer

from streamflow_data import ChecksumMismatchError, ConnectorError
from streamflow_data.checksum import crc32c, crc32c_base64
from tests.s3.conftest import OptionsFactory, multipart_uploads

MiB = 1024 * 1024
_HOP = {"content-length", "transfer-encoding", "connection", "keep-alive", "host"}


@dataclass
class Relay:
    """An HTTP relay to the S3 endpoint that records request headers."""

    url: str = ""
    seen: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    """(method and query, headers) of each request relayed."""
    bad_part_etags: bool = False
    """Answer every UploadPart with another ETag than the server's."""
    fail_once: set[int] = field(default_factory=set)
    """Part numbers answered once with an error (500) instead of being relayed."""
    part_bodies: list[tuple[int, bytes]] = field(default_factory=list)
    """(part number, body) of each UploadPart received, retries included."""

    def parts(self) -> list[dict[str, str]]:
        """The headers of each UploadPart, by part number."""
        numbered = {
            int(line.split("partNumber=")[1].split("&")[0]): headers
            for line, headers in self.seen
            if "partNumber=" in line
        }
        return [numbered[number] for number in sorted(numbered)]


@pytest.fixture
async def relay(s3_endpoint: str) -> AsyncIterator[Relay]:
    found = Relay()
    session = aiohttp.ClientSession(auto_decompress=False)

    async def forward(request: web.Request) -> web.StreamResponse:
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP}
        found.seen.append((f"{request.method} {request.path_qs}", dict(request.headers)))
        body = await request.read()
        if "partNumber=" in request.path_qs:
            number = int(request.query["partNumber"])
            found.part_bodies.append((number, body))
            if number in found.fail_once:
                found.fail_once.discard(number)
                error = b"<Error><Code>InternalError</Code><Message>relay</Message></Error>"
                return web.Response(status=500, body=error, content_type="application/xml")
        async with session.request(
            request.method, s3_endpoint + request.path_qs, headers=headers, data=io.BytesIO(body)
        ) as answer:
            content = await answer.read()
            replied = {k: v for k, v in answer.headers.items() if k.lower() not in _HOP}
        if found.bad_part_etags and "partNumber=" in request.path_qs:
            for name in [name for name in replied if name.lower() == "etag"]:
                replied[name] = '"00000000000000000000000000000000"'
        return web.Response(status=answer.status, body=content, headers=replied)

    application = web.Application(client_max_size=64 * MiB)
    application.router.add_route("*", "/{tail:.*}", forward)
    runner = web.AppRunner(application)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    found.url = f"http://127.0.0.1:{port}"
    yield found
    await runner.cleanup()
    await session.close()


async def _upload(connector: S3Connector, data: bytes) -> None:
    location = connector.locations("s3")[0]
    writer = await connector.open_writer(location, "/object", mtime_ns=0)
    try:
        for offset in range(0, len(data), MiB):
            await writer.write(offset, data[offset : offset + MiB])
        await writer.commit()
    except BaseException:
        await writer.abort()
        raise


async def test_each_part_carries_its_crc32c_and_no_md5_by_default(
    relay: Relay, s3_options: OptionsFactory
) -> None:
    data = os.urandom(12 * MiB)  # parts of 5, 5 and 2 MiB
    connector = S3Connector(s3_options(endpoint_url=relay.url))
    try:
        await _upload(connector, data)
    finally:
        await connector.close()
    parts = relay.parts()
    expected = [data[start : start + 5 * MiB] for start in range(0, len(data), 5 * MiB)]
    assert [p.get("x-amz-checksum-crc32c") for p in parts] == [
        crc32c_base64(crc32c(part)) for part in expected
    ]
    assert all("Content-MD5" not in p for p in parts)


async def test_a_whole_object_put_sends_its_body_without_waiting_for_100_continue(
    relay: Relay, s3_options: OptionsFactory
) -> None:
    """botocore asks every PutObject to wait for the server's ``100 Continue``; a round
    trip per small object that the connector drops. Parts keep it."""
    connector = S3Connector(s3_options(endpoint_url=relay.url))
    location = connector.locations("s3")[0]
    try:
        await connector.write_file(location, "/small", b"x" * 16384)
        await _upload(connector, os.urandom(6 * MiB))  # two parts
        assert await connector.read_file(location, "/small") == b"x" * 16384
    finally:
        await connector.close()
    whole = [h for line, h in relay.seen if line.startswith("PUT /") and "?" not in line]
    parts = relay.parts()
    assert whole and all("Expect" not in headers for headers in whole)
    assert len(parts) == 2 and all(headers.get("Expect") == "100-continue" for headers in parts)


async def test_a_part_retried_after_a_server_error_sends_the_same_signed_bytes(
    relay: Relay, s3_options: OptionsFactory, s3_endpoint: str, bucket: str
) -> None:
    """A part's body is read twice per attempt (hashed for the signature, then sent) and
    again when botocore retries it: each time the whole part, signed with its SHA-256."""
    data = os.urandom(12 * MiB)
    relay.fail_once = {2}
    connector = S3Connector(s3_options(endpoint_url=relay.url))
    try:
        await _upload(connector, data)
        location = connector.locations("s3")[0]
        assert await connector.read_file(location, "/object") == data
    finally:
        await connector.close()
    expected = {n: data[(n - 1) * 5 * MiB : n * 5 * MiB] for n in (1, 2, 3)}
    assert sorted(n for n, _ in relay.part_bodies) == [1, 2, 2, 3]
    assert all(body == expected[n] for n, body in relay.part_bodies)
    assert [p["X-Amz-Content-SHA256"] for p in relay.parts()] == [
        hashlib.sha256(expected[n]).hexdigest() for n in (1, 2, 3)
    ]
    assert multipart_uploads(s3_endpoint, bucket) == []


async def test_with_content_md5_each_part_carries_its_md5_and_a_wrong_etag_is_refused(
    relay: Relay, s3_options: OptionsFactory, s3_endpoint: str, bucket: str
) -> None:
    data = os.urandom(7 * MiB)
    connector = S3Connector(s3_options(endpoint_url=relay.url, content_md5=True))
    try:
        await _upload(connector, data)
        md5s = [p.get("Content-MD5") for p in relay.parts()]
        assert md5s == [
            base64.b64encode(hashlib.md5(part).digest()).decode()
            for part in (data[: 5 * MiB], data[5 * MiB :])
        ]
        relay.bad_part_etags = True
        with pytest.raises(ChecksumMismatchError, match="ETag"):
            await _upload(connector, data)
    finally:
        await connector.close()
    assert multipart_uploads(s3_endpoint, bucket) == []  # the refused upload was aborted


async def test_without_content_md5_a_wrong_etag_fails_the_completion(
    relay: Relay, s3_options: OptionsFactory, s3_endpoint: str, bucket: str
) -> None:
    """The ETags answered are what the completion names: S3 refuses parts it does not
    hold, and the upload is aborted."""
    connector = S3Connector(s3_options(endpoint_url=relay.url))
    relay.bad_part_etags = True
    try:
        with pytest.raises(ConnectorError, match="InvalidPart"):
            await _upload(connector, os.urandom(6 * MiB))
    finally:
        await connector.close()
    assert multipart_uploads(s3_endpoint, bucket) == []


def test_a_part_buffer_hands_over_whole_parts_and_keeps_the_rest() -> None:
    buffer = PartBuffer(10)
    buffer.add(b"abcdef")
    assert not buffer.full and buffer.size == 6
    buffer.add(memoryview(b"ghijklmnopqrstuvwxyz"))  # crosses two part boundaries
    assert buffer.full and buffer.size == 26
    assert buffer.take_part() == b"abcdefghij"
    assert buffer.full and buffer.size == 16
    assert buffer.take_part() == b"klmnopqrst"
    assert not buffer.full and buffer.held() == b"uvwxyz"
    assert buffer.keep(2) == b"uv" and buffer.size == 2
    buffer.add(b"12")
    assert buffer.take_all() == b"uv12" and buffer.size == 0 and buffer.held() == b""


def test_a_part_buffer_hands_over_its_memory_and_gathers_in_parts_given_back() -> None:
    buffer = PartBuffer(4)
    buffer.add(b"abcd")
    first = buffer.take_part()  # the next part is already being gathered elsewhere
    assert first == b"abcd" and isinstance(first, bytearray)
    buffer.recycle(first, in_flight=1)
    buffer.add(b"efgh")
    second = buffer.take_part()
    buffer.recycle(second, in_flight=0)  # nothing else in flight: not kept
    buffer.add(b"ijkl")
    third = buffer.take_part()
    assert third is first and third == b"ijkl"  # the same memory, refilled
    buffer.add(b"mnop")
    fourth = buffer.take_part()
    assert fourth is not first and fourth is not second


async def test_a_part_body_reads_seeks_and_iterates_over_views_of_the_part() -> None:
    data = bytes(range(256)) * 10
    body = PartBody(bytearray(data))
    body.chunk_size = 1000
    assert len(body) == len(data) and body.tell() == 0
    assert bytes(body.read(300)) == data[:300] and body.tell() == 300
    assert bytes(body.read()) == data[300:] and bytes(body.read(5)) == b""
    assert body.seek(-10, os.SEEK_END) == len(data) - 10
    assert body.seek(20, os.SEEK_CUR) == len(data)  # clamped to the end
    body.seek(0)
    chunks = [chunk async for chunk in body]
    assert [len(chunk) for chunk in chunks] == [1000, 1000, 560]
    assert all(isinstance(chunk, memoryview) for chunk in chunks)
    assert b"".join(chunks) == data
    body.seek(0)
    assert b"".join([chunk async for chunk in body]) == data  # again, as a retry reads it
