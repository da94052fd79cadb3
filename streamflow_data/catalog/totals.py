"""Statistics kept across runs: what every manager sharing the catalog has moved.

A manager's :class:`~streamflow_data.transfer.stats.Statistics` start at zero; when it
closes, they are added to the catalog's totals, which ``streamflow-data stats`` shows.
"""

from __future__ import annotations

from streamflow_data.catalog.database import Database
from streamflow_data.model import ExecutionLocation
from streamflow_data.transfer.stats import Statistics

__all__ = ["add_statistics", "load_statistics"]

_LOCATION = (
    "INSERT INTO location_totals (deployment, name, bytes_read, bytes_written, read_seconds, "
    "write_seconds) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (deployment, name) DO UPDATE SET "
    "bytes_read = location_totals.bytes_read + excluded.bytes_read, "
    "bytes_written = location_totals.bytes_written + excluded.bytes_written, "
    "read_seconds = location_totals.read_seconds + excluded.read_seconds, "
    "write_seconds = location_totals.write_seconds + excluded.write_seconds"
)
_COUNTER = (
    "INSERT INTO counters (name, value) VALUES (?, ?) "
    "ON CONFLICT (name) DO UPDATE SET value = counters.value + excluded.value"
)
_CACHE_COUNTERS = ("hits", "misses", "evictions", "bytes_evicted")


async def add_statistics(database: Database, statistics: Statistics) -> None:
    """Add a manager's statistics to the totals, in one transaction."""
    locations = [
        (
            location.deployment,
            location.name,
            totals.bytes_read,
            totals.bytes_written,
            totals.read_seconds,
            totals.write_seconds,
        )
        for location, totals in statistics.locations.items()
    ]
    counters = [(f"error:{name}", count) for name, count in statistics.errors.items()]
    counters.append(("retries", statistics.retries))
    counters.extend((f"cache:{name}", getattr(statistics.cache, name)) for name in _CACHE_COUNTERS)
    counters = [(name, value) for name, value in counters if value]
    if not (locations or counters):
        return
    async with database.transaction() as connection:
        await connection.executemany(_LOCATION, locations)
        await connection.executemany(_COUNTER, counters)


async def load_statistics(database: Database) -> Statistics:
    """The totals of every manager that closed with this catalog."""
    statistics = Statistics()
    for deployment, name, read, written, read_s, write_s in await database.fetch_all(
        "SELECT deployment, name, bytes_read, bytes_written, read_seconds, write_seconds "
        "FROM location_totals ORDER BY deployment, name"
    ):
        statistics.read(ExecutionLocation(deployment, name), read, read_s)
        statistics.wrote(ExecutionLocation(deployment, name), written, write_s)
    for name, value in await database.fetch_all("SELECT name, value FROM counters"):
        kind, _, what = name.partition(":")
        if kind == "error":
            statistics.errors[what] += int(value)
        elif kind == "retries":
            statistics.retries += int(value)
        elif kind == "cache" and what in _CACHE_COUNTERS:
            setattr(statistics.cache, what, int(value))
    return statistics
