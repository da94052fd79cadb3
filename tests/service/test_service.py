"""The service over real HTTP on a Unix socket or 127.0.0.1: the API, its errors, its
event streams, its token, and the remote client beside a second one."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from streamflow_data import (
    AuthenticationError,
    ConfigurationError,
    DefaultDataManager,
    ExecutionLocation,
    TransferCancelledError,
)
from streamflow_data.remote import RemoteDataManager
from streamflow_data.service import Endpoint, Service, api_document, running
from tests.conftest import serving
from tests.wrappers import WrappingConnector

LOCAL = ExecutionLocation("local", "localhost", local=True)
STALL = ExecutionLocation("stall", "localhost", local=True)


def session_for(url: str, token: str | None = None) -> tuple[aiohttp.ClientSession, str]:
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    if url.startswith("unix://"):
        connector = aiohttp.UnixConnector(url.removeprefix("unix://"))
        return aiohttp.ClientSession(connector=connector, headers=headers), "http://service"
    return aiohttp.ClientSession(headers=headers), url


@pytest.fixture
async def stalled() -> AsyncIterator[tuple[DefaultDataManager, WrappingConnector, str]]:
    """A served manager whose ``stall`` deployment holds every write until released."""
    connector = WrappingConnector(stall_writes=True)
    async with (
        DefaultDataManager({"stall": connector}) as manager,
        serving(manager) as (_, url),
    ):
        yield manager, connector, url


async def held_copy(
    remote: RemoteDataManager, connector: WrappingConnector, tmp_path: Path, data: bytes
) -> asyncio.Task[None]:
    """Register ``tmp_path/f`` holding ``data`` and start copying it to ``stall``'s
    ``tmp_path/g`` through the service; returns once the copy's write is held."""
    source = tmp_path / "f"
    await asyncio.to_thread(source.write_bytes, data)
    remote.register_path(LOCAL, str(source))
    copy = asyncio.create_task(
        remote.transfer_data(LOCAL, str(source), [STALL], str(tmp_path / "g"))
    )
    await asyncio.wait_for(connector.write_started.wait(), 5)
    return copy


async def call(url: str, method: str, path: str, body: Any = None, **kw: Any) -> tuple[int, Any]:
    session, base = session_for(url, kw.pop("token", None))
    async with session, session.request(method, base + path, data=body, **kw) as response:
        text = await response.text()
        kind = response.headers.get("Content-Type", "")
        return response.status, json.loads(text) if "json" in kind else text


# -- bad input: a typed 4xx naming the field, never a 500 -----------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "kind", "field"),
    [
        ("POST", "/v1/changes", "{not json", 400, "MalformedJSON", None),
        ("POST", "/v1/changes", '{"operations": [], "extra": 1}', 422, "ValidationError", "extra"),
        (
            "POST",
            "/v1/changes",
            '{"operations": [{"op": "register", "location": {"deployment": "local"},'
            ' "path": "rel/ative"}]}',
            422,
            "InvalidPathError",
            "operations.0.path",
        ),
        (
            "POST",
            "/v1/changes",
            '{"operations": [{"op": "register", "location": {"deployment": "local"},'
            ' "path": "/a/\\u0000b"}]}',
            422,
            "InvalidPathError",
            "operations.0.path",
        ),
        (
            "POST",
            "/v1/changes",
            '{"operations": [{"op": "invalidate", "location": {"deployment": "local"},'
            ' "path": "/a/../etc"}]}',
            422,
            "InvalidPathError",
            "operations.0.path",
        ),
        (
            "POST",
            "/v1/transfers",
            '{"source": {"location": {"deployment": "nowhere"}, "path": "/x"},'
            ' "destinations": [{"location": {"deployment": "local"}, "path": "/y"}]}',
            404,
            "UnknownDeploymentError",
            "source.location.deployment",
        ),
        (
            "POST",
            "/v1/transfers",
            '{"source": {"location": {"deployment": "local"}, "path": "/never/registered"},'
            ' "destinations": [{"location": {"deployment": "local"}, "path": "/y"}]}',
            404,
            "UnknownPathError",
            "source.path",
        ),
        (
            "POST",
            "/v1/transfers",
            '{"source": {"location": {"deployment": "local", "name": "elsewhere"},'
            ' "path": "/x"},'
            ' "destinations": [{"location": {"deployment": "local"}, "path": "/y"}]}',
            404,
            "UnknownLocationError",
            "source.location.name",
        ),
        ("GET", "/v1/replicas?path=relative", None, 422, "InvalidPathError", "path"),
        ("GET", "/v1/replicas?path=/a&bogus=1", None, 422, "ValidationError", "bogus"),
        ("GET", "/v1/source?path=/a", None, 422, "ValidationError", "to"),
        ("GET", "/v1/transfers/77", None, 404, "UnknownTransferError", None),
        ("GET", "/v1/transfers/x", None, 422, "InvalidPathError", "id"),
        ("GET", "/v1/nothing-here", None, 404, "NotFound", None),
        ("PUT", "/v1/replicas", None, 405, "MethodNotAllowed", None),
    ],
)
async def test_bad_requests_get_a_typed_error_naming_the_field(
    served: tuple[DefaultDataManager, Service, str],
    method: str,
    path: str,
    body: str | None,
    status: int,
    kind: str,
    field: str | None,
) -> None:
    manager, _, url = served
    got, document = await call(url, method, path, body)
    assert got == status, document
    assert document["error"]["type"] == kind
    assert document["error"]["field"] == field
    assert "Traceback" not in json.dumps(document)
    assert len(manager.mapper) == 0  # nothing was done


async def test_a_batch_is_checked_whole_before_any_operation_applies(
    served: tuple[DefaultDataManager, Service, str],
) -> None:
    manager, _, url = served
    batch = {
        "operations": [
            {"op": "register", "location": {"deployment": "local"}, "path": "/ok"},
            {"op": "register", "location": {"deployment": "local"}, "path": "bad"},
        ]
    }
    status, document = await call(url, "POST", "/v1/changes", json.dumps(batch))
    assert (status, document["error"]["field"]) == (422, "operations.1.path")
    assert manager.get_data_locations("/ok") == []


# -- the token -------------------------------------------------------------------------------------


async def test_a_token_is_required_when_set_and_never_shown(tmp_path: Path) -> None:
    secret = "s3cret-t0ken-value"
    async with DefaultDataManager() as manager, serving(manager, token=secret) as (service, url):
        register = json.dumps(
            {"operations": [{"op": "register", "location": {"deployment": "local"}, "path": "/x"}]}
        )
        status, document = await call(url, "POST", "/v1/changes", register)
        assert (status, document["error"]["type"]) == (401, "Unauthorized")
        status, _ = await call(url, "POST", "/v1/changes", register, token="wrong")
        assert status == 401
        assert manager.get_data_locations("/x") == []  # nothing done
        assert (await call(url, "GET", "/healthz"))[0] == 200  # for probes
        with pytest.raises(AuthenticationError):
            await RemoteDataManager(url).open()
        async with RemoteDataManager(url, token=secret) as remote:
            remote.register_path(LOCAL, "/x")
            await remote.flush()
        assert [r.path for r in manager.get_data_locations("/x")] == ["/x"]
        assert secret not in repr(service) and secret not in repr(remote)


async def test_listening_beyond_loopback_needs_a_token() -> None:
    async with DefaultDataManager() as manager:
        with pytest.raises(ConfigurationError, match="token"):
            async with running(manager, Endpoint(host="0.0.0.0", port=0)):
                pass


async def test_listens_on_loopback_tcp_and_a_private_unix_socket(
    served: tuple[DefaultDataManager, Service, str],
) -> None:
    _, _, url = served
    mode = (await asyncio.to_thread(Path(url.removeprefix("unix://")).stat)).st_mode
    assert mode & 0o777 == 0o600
    async with (
        DefaultDataManager() as manager,
        running(manager, Endpoint.parse("127.0.0.1:0")) as (
            _,
            tcp,
        ),
    ):
        assert tcp.startswith("http://127.0.0.1:")
        status, document = await call(tcp, "GET", "/healthz")
        assert (status, document["status"]) == (200, "ok")


# -- what clients see -----------------------------------------------------------------------------


async def test_two_clients_see_each_others_changes(
    served: tuple[DefaultDataManager, Service, str],
) -> None:
    _, _, url = served
    async with RemoteDataManager(url) as first, RemoteDataManager(url) as second:
        first.register_path(LOCAL, "/shared/a")
        await first.flush()
        for _ in range(200):  # bounded: 2 s
            if second.get_data_locations("/shared/a"):
                break
            await asyncio.sleep(0.01)
        assert [r.path for r in second.get_data_locations("/shared/a")] == ["/shared/a"]
        second.invalidate_location(LOCAL, "/shared")
        await second.flush()
        for _ in range(200):
            if not first.get_data_locations("/shared/a"):
                break
            await asyncio.sleep(0.01)
        assert first.get_data_locations("/shared/a") == []


async def test_a_client_opening_later_gets_the_graph(
    served: tuple[DefaultDataManager, Service, str], tmp_path: Path
) -> None:
    manager, _, url = served
    a = manager.register_path(LOCAL, "/d/a")
    b = manager.register_path(ExecutionLocation("hpc", "login"), "/scratch/a")
    manager.register_relation(a, b)
    manager.invalidate_location(LOCAL, "/d/a")
    c = manager.register_path(LOCAL, "/d/c")
    manager.register_relation(b, c)

    def answers(graph: DefaultDataManager | RemoteDataManager) -> list[list[tuple[str, str]]]:
        paths = ["/d", "/d/a", "/d/c", "/scratch/a"]
        return [[(r.deployment, r.path) for r in graph.get_data_locations(p)] for p in paths]

    async with RemoteDataManager(url) as remote:
        assert answers(remote) == answers(manager)
        assert answers(remote)[2] == [("local", "/d/c"), ("hpc", "/scratch/a")]


async def test_source_query_waits_for_a_transfer_in_flight(
    stalled: tuple[DefaultDataManager, WrappingConnector, str], tmp_path: Path
) -> None:
    _, connector, url = stalled
    async with RemoteDataManager(url) as remote:
        copy = await held_copy(remote, connector, tmp_path, b"data" * 1000)
        status, document = await call(
            url, "GET", f"/v1/source?path={tmp_path / 'g'}&to=stall&timeout=0.2"
        )
        assert (status, document["error"]["type"]) == (504, "TimeoutError")
        waiter = asyncio.create_task(remote.get_source_location(str(tmp_path / "g"), "stall"))
        await asyncio.sleep(0.1)
        assert not waiter.done()
        connector.release.set()
        await asyncio.wait_for(copy, 10)
        chosen = await asyncio.wait_for(waiter, 10)
        assert chosen is not None and chosen.deployment == "stall"
        assert await asyncio.to_thread((tmp_path / "g").read_bytes) == b"data" * 1000


async def test_a_client_gone_from_an_event_stream_leaves_the_transfer_running(
    stalled: tuple[DefaultDataManager, WrappingConnector, str], tmp_path: Path
) -> None:
    manager, connector, url = stalled
    source = tmp_path / "f"
    await asyncio.to_thread(source.write_bytes, b"x" * 5000)
    manager.register_path(LOCAL, str(source))
    order = {
        "source": {"location": {"deployment": "local"}, "path": str(source)},
        "destinations": [{"location": {"deployment": "stall"}, "path": str(tmp_path / "g")}],
    }
    status, document = await call(url, "POST", "/v1/transfers", json.dumps(order))
    assert (status, document["state"]) == (202, "running")
    transfer = document["id"]
    session, base = session_for(url)
    async with session, session.get(f"{base}/v1/transfers/{transfer}/events") as response:
        first = await response.content.readline()
        assert first == b"event: status\n"
    # the stream's client is gone; the changes' followers too
    connector.release.set()
    for _ in range(500):  # bounded: 5 s
        status, document = await call(url, "GET", f"/v1/transfers/{transfer}")
        if document["state"] != "running":
            break
        await asyncio.sleep(0.01)
    assert document["state"] == "done"
    assert await asyncio.to_thread((tmp_path / "g").read_bytes) == b"x" * 5000


async def test_cancelling_a_transfer_is_asked_for_explicitly(
    stalled: tuple[DefaultDataManager, WrappingConnector, str], tmp_path: Path
) -> None:
    _, connector, url = stalled
    async with RemoteDataManager(url) as remote:
        copy = await held_copy(remote, connector, tmp_path, b"y" * 5000)
        status, listing = await call(url, "GET", "/v1/transfers")
        transfer = listing["transfers"][0]["id"]
        status, document = await call(url, "DELETE", f"/v1/transfers/{transfer}")
        assert (status, document["state"]) == (200, "cancelled")
        with pytest.raises(TransferCancelledError):
            await asyncio.wait_for(copy, 5)
        assert not (tmp_path / "g").exists()
        assert remote.get_data_locations(str(tmp_path / "g")) == []


async def test_progress_metrics_statistics_and_the_openapi_document(
    served: tuple[DefaultDataManager, Service, str], tmp_path: Path
) -> None:
    _, _, url = served
    source = tmp_path / "f"
    await asyncio.to_thread(source.write_bytes, b"z" * 100_000)
    seen: list[int] = []
    async with RemoteDataManager(url, listeners=[lambda p: seen.append(p.bytes_done)]) as remote:
        remote.register_path(LOCAL, str(source))
        await remote.transfer_data(LOCAL, str(source), [LOCAL], str(tmp_path / "g"), writable=True)
    assert seen and seen[-1] == 100_000
    status, text = await call(url, "GET", "/metrics")
    assert status == 200
    assert (
        'streamflow_data_written_bytes_total{deployment="local",location="localhost"} 100000.0'
        in text
    )
    assert 'streamflow_data_transfers{state="done"} 1.0' in text
    status, stats = await call(url, "GET", "/v1/statistics")
    assert stats["transfers"]["done"] == 1 and stats["locations"][0]["bytes_written"] == 100_000
    status, document = await call(url, "GET", "/v1/openapi.json")
    assert document["openapi"].startswith("3.")
    assert {"get", "post"} <= set(document["paths"]["/v1/transfers"])
    assert "TransferRequest" in document["components"]["schemas"]
    assert document == api_document()  # what the docs render is what the service serves
    timeout = next(
        p for p in document["paths"]["/v1/source"]["get"]["parameters"] if p["name"] == "timeout"
    )
    assert "504" in timeout["description"]  # field docstrings reach the document
