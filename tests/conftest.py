"""Shared fixtures. Every async test runs under blockbuster: a blocking call on the event
loop thread fails the test."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from blockbuster import BlockBuster, blockbuster_ctx

from streamflow_data import DataManager, DefaultDataManager, ExecutionLocation
from streamflow_data.remote import RemoteDataManager
from streamflow_data.service import Endpoint, Service, running
from tests.helpers import Hosts
from tests.postgres import PostgresServer, start_postgres
from tests.serving import socket_directory
from tests.ssh.sshd import SSHServer, client_key, known_hosts, owned_directory, start_server

LOCAL = ExecutionLocation(deployment="local", name="localhost", local=True)


@pytest.fixture(autouse=True)
def blockbuster(request: pytest.FixtureRequest) -> Iterator[BlockBuster | None]:
    """Detect blocking calls made on the event loop by streamflow_data (async tests only)."""
    if not hasattr(request.node, "obj") or not _is_async(request.node.obj):
        yield None
        return
    with blockbuster_ctx("streamflow_data") as detector:
        for function in detector.functions.values():
            # asyncpg reads ~/.pgpass and its SSL files as it opens a connection (see
            # streamflow_data.catalog.postgres): a library's, once per connection.
            function.can_block_in("asyncpg/connect_utils.py", "_parse_connect_dsn_and_args")
        yield detector


def _is_async(function: object) -> bool:
    import inspect

    return inspect.iscoroutinefunction(function)


@pytest.fixture
async def manager() -> AsyncIterator[DefaultDataManager]:
    async with DefaultDataManager() as data_manager:
        yield data_manager


@contextlib.asynccontextmanager
async def serving(
    data_manager: DefaultDataManager, token: str | None = None
) -> AsyncIterator[tuple[Service, str]]:
    """``data_manager`` served on a Unix socket of its own: the service and its URL."""
    with socket_directory() as directory:
        endpoint = Endpoint(unix=f"{directory}/service.sock")
        async with running(data_manager, endpoint, token) as (service, url):
            yield service, url


@pytest.fixture
def socket_dir() -> Iterator[Path]:
    """A short directory for Unix sockets (see :func:`tests.serving.socket_directory`)."""
    with socket_directory() as directory:
        yield directory


@pytest.fixture
async def served() -> AsyncIterator[tuple[DefaultDataManager, Service, str]]:
    """A data manager served on a Unix socket: the manager, the service and its URL."""
    async with DefaultDataManager() as data_manager, serving(data_manager) as (service, url):
        yield data_manager, service, url


@pytest.fixture(params=["in-process", "remote"])
async def contract_manager(request: pytest.FixtureRequest) -> AsyncIterator[DataManager]:
    """The contract's two implementations: a manager in this process, and one in a
    service, reached over HTTP."""
    marker = request.node.get_closest_marker("in_process_only")
    if request.param == "remote" and marker is not None:
        pytest.skip(marker.args[0])
    async with DefaultDataManager() as data_manager:
        if request.param == "in-process":
            yield data_manager
            return
        async with serving(data_manager) as (_, url), RemoteDataManager(url) as remote:
            yield remote


@pytest.fixture
def local() -> ExecutionLocation:
    return LOCAL


@pytest.fixture
def hosts(tmp_path: Path) -> Hosts:
    """Separate "hosts" on this machine, below the test's own directory."""
    return Hosts(tmp_path / "hosts")


@pytest.fixture(scope="session")
def ssh_base() -> Iterator[Path]:
    """A directory every user can traverse (pytest's own are private to us)."""
    base = Path(tempfile.mkdtemp(prefix="sfd-ssh-"))
    base.chmod(0o755)
    yield base
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def ssh_servers(ssh_base: Path) -> Iterator[list[SSHServer]]:
    """Two real sshd on 127.0.0.1 for the session (the SSH and StreamFlow tests')."""
    key = client_key(ssh_base)
    servers = [start_server(name, ssh_base / name, key) for name in ("host-a", "host-b")]
    known_hosts(servers, ssh_base / "known_hosts")
    yield servers
    for server in servers:
        server.stop()


@pytest.fixture
def remote_dir(ssh_base: Path) -> Path:
    """A fresh directory on the (local) hosts, owned by the user the tests log in as."""
    scratch = owned_directory(Path(tempfile.mkdtemp(dir=ssh_base)) / "remote")
    scratch.parent.chmod(0o755)
    return scratch


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A real PostgreSQL server on 127.0.0.1 for the session (the catalog tests')."""
    base = Path(tempfile.mkdtemp(prefix="sfd-pg-"))
    base.chmod(0o711)  # the server's own user reaches its directory inside
    server = start_postgres(base / "pg")
    yield server
    server.stop()
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(params=["sqlite", "postgresql"])
def catalog_path(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Where a test's catalog lives: a SQLite file, then a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return str(tmp_path / "catalog.sqlite")
    server: PostgresServer = request.getfixturevalue("postgres")
    return server.create_database()
