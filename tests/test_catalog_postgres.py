"""What only a catalog on a PostgreSQL server meets: its server restarting, being
unreachable, holding a newer schema or other tables, and a password in its URL."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from streamflow_data import CatalogError, CatalogSettings, DefaultDataManager, ExecutionLocation
from streamflow_data.catalog.database import SCHEMA_VERSION, redacted_url
from tests.postgres import PostgresServer

A = ExecutionLocation("cluster", "node-a")


async def test_registrations_survive_the_server_restarting_mid_run(
    postgres: PostgresServer,
) -> None:
    url = postgres.create_database()
    async with DefaultDataManager(catalog=url) as manager:
        for index in range(100):
            manager.register_path(A, f"/before/{index}")
        await manager.flush()
        await asyncio.to_thread(postgres.stop, "immediate")  # as if the server crashed
        for index in range(100):
            manager.register_path(A, f"/during/{index}")  # queued while it is down
        restart = asyncio.create_task(asyncio.to_thread(postgres.start))
        await manager.flush()  # written once the server is back
        await restart
        for index in range(100):
            manager.register_path(A, f"/after/{index}")
    async with DefaultDataManager(catalog=url) as reopened:
        for stage in ("before", "during", "after"):
            assert reopened.get_data_locations(f"/{stage}/99")[0].location == A


async def test_an_unreachable_server_is_a_typed_error_without_the_password(
    postgres: PostgresServer,
) -> None:
    url = f"postgresql://sfd:s3cret@127.0.0.1:{postgres.port + 1}/catalog"
    settings = CatalogSettings(path=url, busy_timeout=2.0)
    with pytest.raises(CatalogError, match="cannot reach the server") as caught:
        await DefaultDataManager(catalog=settings).open()
    assert "s3cret" not in str(caught.value)
    assert caught.value.path == f"postgresql://sfd:***@127.0.0.1:{postgres.port + 1}/catalog"


async def test_a_missing_database_is_named(postgres: PostgresServer) -> None:
    url = postgres.url.rpartition("/")[0] + "/nosuchdb"
    with pytest.raises(CatalogError, match="no such database"):
        await DefaultDataManager(catalog=url).open()


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (
            [
                "CREATE TABLE schema_version (version INTEGER NOT NULL)",
                f"INSERT INTO schema_version VALUES ({SCHEMA_VERSION + 1})",
            ],
            "written by a newer streamflow-data",
        ),
        (["CREATE TABLE payroll (name TEXT)"], "not a streamflow-data catalog"),
    ],
    ids=["newer-schema", "other-tables"],
)
async def test_a_database_that_is_not_ours_to_write_is_refused(
    postgres: PostgresServer, setup: list[str], message: str
) -> None:
    url = postgres.create_database()
    connection = await asyncpg.connect(url)
    try:
        for statement in setup:
            await connection.execute(statement)
    finally:
        await connection.close()
    with pytest.raises(CatalogError, match=message):
        await DefaultDataManager(catalog=url).open()
    connection = await asyncpg.connect(url)
    try:  # and it was left as it was
        tables = await connection.fetch(
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_schema = current_schema() ORDER BY table_name"
        )
    finally:
        await connection.close()
    assert len(tables) == 1


def test_a_url_password_is_masked() -> None:
    assert redacted_url("postgresql://me:pw@db:5432/c") == "postgresql://me:***@db:5432/c"
    assert redacted_url("postgresql://db/c") == "postgresql://db/c"
