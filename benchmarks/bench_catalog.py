"""The catalog file: registration rate with it, and reopening it.

* Registering 1,000,000 paths (10 locations, 1,000 directories) with a catalog file,
  until every row is written (``flush``), against the same registrations with no
  catalog, run in the same process. Both register in slices of 10,000 with an ``await``
  between slices, as a workflow manager does between steps; the better of ``--rounds``
  rounds each.
* Reopening that catalog: seconds until a new manager answers queries (the log replayed).
* The same two with a PostgreSQL catalog (Debian's server, started on 127.0.0.1 with its
  default settings, fsync included), against the catalog file.

What a resume moves is measured by :mod:`benchmarks.bench_resume`.

Run: ``python -m benchmarks.bench_catalog [--paths N] [--rounds N]``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from benchmarks.bench_replica_graph import Workload
from benchmarks.common import Figure, print_table
from streamflow_data import DefaultDataManager
from tests.postgres import start_postgres

SLICE = 10_000


async def _register(manager: DefaultDataManager, work: Workload) -> None:
    register_path = manager.register_path
    pairs = list(zip(work.locations, work.paths, strict=True))
    for start in range(0, len(pairs), SLICE):
        for location, path in pairs[start : start + SLICE]:
            register_path(location, path)
        await asyncio.sleep(0)
    await manager.flush()


async def _timed(work: Callable[[], Awaitable[object]]) -> float:
    start = time.perf_counter()
    await work()
    return time.perf_counter() - start


async def _memory_round(work: Workload) -> float:
    async with DefaultDataManager() as manager:
        return len(work.paths) / await _timed(lambda: _register(manager, work))


async def _catalog_round(work: Workload, path: str) -> tuple[float, float, int]:
    """Registrations/s with the catalog, seconds to reopen it, replicas reopened."""
    async with DefaultDataManager(catalog=path) as manager:
        rate = len(work.paths) / await _timed(lambda: _register(manager, work))
        replicas = len(manager.mapper)
    reopened = DefaultDataManager(catalog=path)
    seconds = await _timed(reopened.open)
    assert len(reopened.mapper) == replicas, "the reopened graph differs"
    await reopened.close()
    return rate, seconds, replicas


def run(count: int, rounds: int) -> list[Figure]:
    work = Workload(count, 1)
    memory, catalog, reopen, server_rates, server_reopen = [], [], [], [], []
    with tempfile.TemporaryDirectory(prefix="sfd-bench-catalog-") as directory:
        base = Path(directory)
        base.chmod(0o711)  # the PostgreSQL server's own user reaches its directory
        postgres = start_postgres(base / "postgres")
        try:
            for number in range(rounds):
                memory.append(asyncio.run(_memory_round(work)))
                path = os.path.join(directory, f"catalog-{number}.sqlite")
                rate, seconds, replicas = asyncio.run(_catalog_round(work, path))
                catalog.append(rate)
                reopen.append(seconds)
                rate, seconds, _ = asyncio.run(_catalog_round(work, postgres.create_database()))
                server_rates.append(rate)
                server_reopen.append(seconds)
        finally:
            postgres.stop()
    return [
        Figure("registrations with the catalog file", max(catalog), "/s", max(memory), ">= 0.5x"),
        Figure(f"reopen ({replicas:,} replicas)", min(reopen) * 1000, "ms", None, "< 10,000 ms"),
        Figure(
            "registrations with PostgreSQL (baseline: the catalog file)",
            max(server_rates),
            "/s",
            max(catalog),
            ">= 0.5x",
        ),
        Figure("reopen from PostgreSQL", min(server_reopen) * 1000, "ms", None, "< 10,000 ms"),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--paths", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=2)
    args, _ = parser.parse_known_args()
    print_table(
        f"Catalog: {args.paths:,} paths (best of {args.rounds})",
        run(args.paths, args.rounds),
    )


if __name__ == "__main__":
    main()
