"""Three services in queue mode on one PostgreSQL catalog drain 300 small-file transfers.

Debian's PostgreSQL is started on 127.0.0.1 (default settings), then three
``streamflow-data serve --queue`` processes on it, each running 4 transfers at once and
taking over a silent service's transfers after ``stale_lock_after`` = 3 s (the default
is 30 s: the takeover waits that long). 300 transfers, each a directory of 20 files of
4 KiB from this machine to this machine, are queued in one transaction once the services
run (their sources registered in the catalog before). The figure is the time from the
queueing until every transfer is recorded done:

* with one service's process group killed (SIGKILL) once 100 transfers are done,
* against the same with no kill (the baseline), rounds alternating, each in fresh
  directories and a fresh database.

After each round every row of the queue must be done, claimed once (or twice, for those
taken over from the killed service), and every copy whole.

Run: ``python -m benchmarks.bench_queue [--rounds N] [--transfers N]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import statistics
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

from benchmarks.common import Figure, print_table
from streamflow_data import CatalogSettings, DefaultDataManager, ExecutionLocation
from streamflow_data.catalog import Catalog
from streamflow_data.catalog.queue import QueuedTransfer, TransferQueue
from tests.postgres import PostgresServer, start_postgres
from tests.serving import config_arguments, serve_processes

HERE = ExecutionLocation("local", "localhost", local=True)
FILES_PER_TRANSFER = 20
SERVICES = 3


@contextlib.contextmanager
def services(base: Path, catalog: str) -> Iterator[list[subprocess.Popen[str]]]:
    """The services in queue mode, started one after the other."""
    configs = []
    for number in range(SERVICES):
        config = base / f"service-{number}.toml"
        config.write_text(
            f'[catalog]\npath = "{catalog}"\nstale_lock_after = 3.0\n'
            f'[service]\nlisten = "unix:{base / f"{number}.sock"}"\nqueue = true\n'
            "queue_concurrency = 4\n"
        )
        configs.append(config)
    with serve_processes(config_arguments(configs)) as started:
        yield started


def _sources(base: Path, transfers: int) -> None:
    block = os.urandom(4096)
    for number in range(transfers):
        directory = base / "src" / f"{number}"
        directory.mkdir(parents=True)
        for index in range(FILES_PER_TRANSFER):
            (directory / f"f{index}").write_bytes(block + number.to_bytes(4, "big"))
    (base / "dst").mkdir()


async def _round(base: Path, catalog: str, transfers: int, kill: bool) -> tuple[float, int]:
    """Seconds to drain the queue, and how many transfers were taken over."""
    await asyncio.to_thread(_sources, base, transfers)
    settings = CatalogSettings(path=catalog, follow_interval=0)
    async with DefaultDataManager(catalog=settings) as registrar:  # the sources, first
        for number in range(transfers):
            registrar.register_path(HERE, str(base / "src" / f"{number}"))
    with services(base, catalog) as running:
        async with _queue(catalog) as queue:
            queued = [
                QueuedTransfer.of(
                    (HERE, str(base / "src" / f"{number}")),
                    [(HERE, str(base / "dst" / f"{number}"))],
                    writable=True,
                )
                for number in range(transfers)
            ]
            start = time.perf_counter()
            await queue.submit_all(queued)
            killed = not kill
            for _ in range(12_000):  # bounded: 10 minutes
                counts = await queue.counts()
                if not killed and counts["done"] >= transfers // 3:
                    os.killpg(running[-1].pid, signal.SIGKILL)
                    killed = True
                if counts["done"] + counts["failed"] + counts["cancelled"] == transfers:
                    break
                await asyncio.sleep(0.02)
            seconds = time.perf_counter() - start
            rows = await queue.some(list(range(1, transfers + 1)))
            await _check(base, rows, transfers)
    return seconds, sum(row.attempts > 1 for row in rows)


@contextlib.asynccontextmanager
async def _queue(url: str) -> AsyncIterator[TransferQueue]:
    opened = await Catalog.open(CatalogSettings(path=url, follow_interval=0))
    try:
        yield opened.queue
    finally:
        await opened.close()


async def _check(base: Path, rows: list[QueuedTransfer], transfers: int) -> None:
    if len(rows) != transfers or any(row.state != "done" for row in rows):
        raise RuntimeError(f"not every transfer is done: {[r.state for r in rows]}")
    if any(row.attempts > 2 for row in rows):
        raise RuntimeError("a transfer was claimed more than twice")

    def whole() -> bool:
        return all(
            (base / "dst" / f"{n}" / f"f{i}").read_bytes()
            == (base / "src" / f"{n}" / f"f{i}").read_bytes()
            for n in range(transfers)
            for i in range(FILES_PER_TRANSFER)
        )

    if not await asyncio.to_thread(whole):
        raise RuntimeError("a copy differs from its source")


def run(rounds: int, transfers: int) -> list[Figure]:
    plain: list[float] = []
    killed: list[float] = []
    taken: list[int] = []
    with tempfile.TemporaryDirectory(prefix="sfd-bench-queue-") as directory:
        root = Path(directory)
        root.chmod(0o711)  # the PostgreSQL server's own user reaches its directory
        postgres: PostgresServer = start_postgres(root / "postgres")
        try:
            for number in range(rounds):
                for kill in (False, True):
                    base = root / f"round-{number}-{'kill' if kill else 'plain'}"
                    base.mkdir()
                    seconds, over = asyncio.run(
                        _round(base, postgres.create_database(), transfers, kill)
                    )
                    (killed if kill else plain).append(seconds)
                    if kill:
                        taken.append(over)
        finally:
            postgres.stop()
    worst = max(k / p for k, p in zip(killed, plain, strict=True))
    return [
        Figure(
            f"{transfers} transfers of {FILES_PER_TRANSFER} x 4 KiB, 3 services, one killed, "
            "ms (baseline: no kill)",
            statistics.median(killed) * 1000,
            "ms",
            statistics.median(plain) * 1000,
            "<= 1.5x",
        ),
        Figure("worst round, killed / no kill, %", worst * 100, "%", None, "<= 150 %"),
        Figure(
            "transfers taken over from the killed service (median)",
            statistics.median(taken),
            "",
            None,
            "",
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--transfers", type=int, default=300)
    args, _ = parser.parse_known_args()
    print_table(
        f"Queue mode: 3 services on one PostgreSQL catalog (median of {args.rounds})",
        run(args.rounds, args.transfers),
    )


if __name__ == "__main__":
    main()
