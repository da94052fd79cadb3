"""The replica graph at scale: 1,000,000 file paths over 10 locations and 1,000 directories.

Measures registrations/s, get_data_locations queries/s, get_source_location calls/s and
resident memory per replica. The baseline is a plain dict keyed by (deployment, location,
path), filled and queried with the same keys in the same process: the least any index can
cost in Python. Each rate is the best of ``--rounds`` rounds, baseline and ours
alternating, because this machine is shared and noisy; memory is taken from the first
round, on a fresh heap (later rounds reuse memory freed by earlier ones).

Run: ``python -m benchmarks.bench_replica_graph [--paths N]`` (``nox -s bench`` runs it).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import random
import time

from benchmarks.common import Figure, print_table, rss_bytes, timed
from streamflow_data import DefaultDataManager, ExecutionLocation

LOCATIONS = [ExecutionLocation(f"deployment-{i % 5}", f"node-{i}") for i in range(10)]


class Workload:
    """The paths, their locations and a random sample of them to query."""

    def __init__(self, count: int, queries: int) -> None:
        self.paths = [f"/work/dir-{(i // 10) % 1000:04d}/file-{i:07d}.dat" for i in range(count)]
        self.locations = [LOCATIONS[i % 10] for i in range(count)]
        self.sample = random.Random(1).choices(self.paths, k=queries)


def baseline_round(work: Workload) -> tuple[float, float]:
    """Registrations/s and queries/s of a plain dict."""
    index: dict[tuple[str, str, str], object] = {}

    def fill() -> None:
        for location, path in zip(work.locations, work.paths, strict=True):
            index[(location.deployment, location.name, path)] = location

    def query() -> None:
        for number, path in enumerate(work.sample):
            location = LOCATIONS[number % 10]
            index.get((location.deployment, location.name, path))

    rates = len(work.paths) / timed(fill), len(work.sample) / timed(query)
    index.clear()
    return rates


def manager_round(work: Workload) -> tuple[float, float, float, float, int]:
    """Registrations/s, queries/s, source selections/s, RSS bytes per replica, replicas."""
    manager = DefaultDataManager()
    gc.collect()
    before = rss_bytes()

    def register() -> None:
        register_path = manager.register_path
        for location, path in zip(work.locations, work.paths, strict=True):
            register_path(location, path)

    register_rate = len(work.paths) / timed(register)
    gc.collect()
    replicas = len(manager.mapper)
    per_replica = (rss_bytes() - before) / replicas

    def query() -> None:
        get = manager.get_data_locations
        for path in work.sample:
            get(path)

    query_rate = len(work.sample) / timed(query)

    async def select_sources() -> float:
        get_source = manager.get_source_location
        start = time.perf_counter()
        for path in work.sample:
            await get_source(path, "deployment-3")
        seconds = time.perf_counter() - start
        await manager.close()
        return len(work.sample) / seconds

    source_rate = asyncio.run(select_sources())
    return register_rate, query_rate, source_rate, per_replica, replicas


def run(count: int, queries: int, rounds: int) -> list[Figure]:
    work = Workload(count, queries)
    baselines, ours = [], []
    for _ in range(rounds):
        baselines.append(baseline_round(work))
        gc.collect()
        ours.append(manager_round(work))
        gc.collect()
    base_register = max(b[0] for b in baselines)
    base_query = max(b[1] for b in baselines)
    return [
        Figure("registrations", max(o[0] for o in ours), "/s", base_register, ">= 200,000/s"),
        Figure("get_data_locations", max(o[1] for o in ours), "/s", base_query, ">= 300,000/s"),
        Figure("get_source_location", max(o[2] for o in ours), "/s", base_query),
        Figure("RSS per replica", ours[0][3], "B", None, "< 600 B"),
        Figure("replicas (parent directories included)", ours[0][4], "", None),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--paths", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=300_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    print_table(
        f"Replica graph: {args.paths:,} paths, 10 locations, 1,000 directories "
        f"(best of {args.rounds})",
        run(args.paths, args.queries, args.rounds),
    )


if __name__ == "__main__":
    main()
