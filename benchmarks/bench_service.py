"""The service under load: replica queries over HTTP, and many transfers at once.

* ``get_source_location`` over HTTP: ``streamflow-data serve`` on 127.0.0.1, in a process
  of its own, with a catalog of ``--paths`` paths (10 locations over 5 deployments); 64
  keep-alive connections from this process each send ``--requests`` queries one after
  another (random paths and destination deployments) and check every answer is a 200.
  The load generator is plain asyncio streams, the least a client can cost, so the
  figures are the service's. Requests/s over the whole run, and the 99th percentile of
  the latencies seen by the clients. Baseline: the same queries to a manager with the same
  graph in this process, from 64 tasks. Rounds alternate baseline and service; each
  figure is the worst of the rounds (a target missed in one round is missed).
* 100 transfers at once: 10 clients (:class:`RemoteDataManager`) each submit 10 transfers
  of a ``--size`` MiB file, each to two paths on an SSH host (sshd on 127.0.0.1), to a
  fresh service, at once; all must finish and every copy must equal its source. Wall time
  against the same 100 transfers by a manager in this process; the service's peak
  resident memory (``VmHWM``) over its memory at rest, against the block pool
  (``block_count x block_size``) plus :data:`OVERHEAD_MIB`.

Run: ``python -m benchmarks.bench_service [--paths N] [--requests N] [--rounds N]
[--size MiB]`` (``nox -s bench`` runs it).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import hashlib
import http.client
import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from benchmarks.bench_replica_graph import Workload
from benchmarks.common import Figure, print_table
from streamflow_data import (
    CatalogSettings,
    DefaultDataManager,
    ExecutionLocation,
    TransferSettings,
    load_configuration,
)
from streamflow_data.remote import RemoteDataManager
from tests.ssh.sshd import client_key, known_hosts, login_user, owned_directory, start_server

CLIENTS = 64
LOCAL = ExecutionLocation("local", "localhost", local=True)
HOST = ExecutionLocation("ssh", "host-a")
STREAMFLOW_DATA = Path(sys.executable).with_name("streamflow-data")
MiB = 1024 * 1024
OVERHEAD_MIB = 48
"""What the service may hold beyond its block pool while it runs 100 transfers: the
SSH connections and channels (asyncssh buffers up to two 256 KiB slices per channel
writing), the transfers' state, and the heap's slack."""


@dataclass(frozen=True, slots=True)
class Served:
    """A ``streamflow-data serve`` process and where it listens."""

    process: subprocess.Popen[str]
    host: str
    port: int

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def metric(self, name: str) -> float:
        """One value of the service's ``/metrics``."""
        connection = http.client.HTTPConnection(self.host, self.port, timeout=30)
        try:
            connection.request("GET", "/metrics")
            text = connection.getresponse().read().decode()
        finally:
            connection.close()
        for line in text.splitlines():
            if line.startswith(f"{name} "):
                return float(line.split()[1])
        raise RuntimeError(f"no {name} in /metrics")

    def status(self, field: str) -> int:
        """A memory figure of the process from ``/proc/PID/status``, in bytes."""
        with open(f"/proc/{self.process.pid}/status") as status:
            for line in status:
                if line.startswith(f"{field}:"):
                    return int(line.split()[1]) * 1024
        raise RuntimeError(f"no {field} in /proc/{self.process.pid}/status")


@contextlib.contextmanager
def serving(catalog: str, env: Mapping[str, str] | None = None) -> Iterator[Served]:
    """``streamflow-data serve`` on a free port of 127.0.0.1, over ``catalog``, with more
    environment variables ``env``."""
    process = subprocess.Popen(
        [str(STREAMFLOW_DATA), "serve", "--listen", "127.0.0.1:0"],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {}), "STREAMFLOW_DATA_CATALOG": catalog},
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline().split()
        if not line:
            raise RuntimeError("streamflow-data serve did not start")
        host, _, port = line[-1].removeprefix("http://").rpartition(":")
        yield Served(process, host, int(port))
    finally:
        process.terminate()
        if process.wait(timeout=60) != 0:
            raise RuntimeError(f"streamflow-data serve exited with {process.returncode}")


# -- replica queries ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Queries:
    """What each of the 64 clients asks: a path and a destination deployment, in order."""

    clients: list[list[tuple[str, str]]]

    @classmethod
    def draw(cls, work: Workload, per_client: int) -> Queries:
        rng = random.Random(2)
        return cls(
            [
                [
                    (rng.choice(work.paths), f"deployment-{rng.randrange(5)}")
                    for _ in range(per_client)
                ]
                for _ in range(CLIENTS)
            ]
        )

    @property
    def count(self) -> int:
        return sum(len(client) for client in self.clients)


@dataclass(frozen=True, slots=True)
class Load:
    """Requests answered per second, and the latencies of the requests, sorted."""

    rate: float
    latencies: list[float]

    def percentile(self, share: float) -> float:
        return self.latencies[min(len(self.latencies) - 1, int(len(self.latencies) * share))]


async def _fill(catalog: str, work: Workload) -> None:
    async with DefaultDataManager(catalog=catalog) as manager:
        for location, path in zip(work.locations, work.paths, strict=True):
            manager.register_path(location, path)
        await manager.flush()


async def _http_client(served: Served, asks: Sequence[tuple[str, str]], seen: list[float]) -> None:
    reader, writer = await asyncio.open_connection(served.host, served.port)
    try:
        for path, to in asks:
            request = f"GET /v1/source?path={path}&to={to} HTTP/1.1\r\nHost: bench\r\n\r\n"
            start = time.perf_counter()
            writer.write(request.encode())
            head = await reader.readuntil(b"\r\n\r\n")
            if not head.startswith(b"HTTP/1.1 200 "):
                raise RuntimeError(f"the service answered {head.splitlines()[0]!r}")
            length = head.index(b"Content-Length: ") + 16
            body = await reader.readexactly(int(head[length : head.index(b"\r\n", length)]))
            seen.append(time.perf_counter() - start)
            if b'"source":null' in body:
                raise RuntimeError(f"no source for {path}: {body!r}")
    finally:
        writer.close()
        await writer.wait_closed()


async def _over_http(served: Served, queries: Queries) -> Load:
    seen: list[float] = []
    start = time.perf_counter()
    async with asyncio.TaskGroup() as tasks:
        for asks in queries.clients:
            tasks.create_task(_http_client(served, asks, seen))
    wall = time.perf_counter() - start
    return Load(len(seen) / wall, sorted(seen))


async def _in_process(manager: DefaultDataManager, queries: Queries) -> Load:
    seen: list[float] = []

    async def client(asks: Sequence[tuple[str, str]]) -> None:
        for path, to in asks:
            start = time.perf_counter()
            if await manager.get_source_location(path, to) is None:
                raise RuntimeError(f"no source for {path}")
            seen.append(time.perf_counter() - start)
            await asyncio.sleep(0)  # take turns, as 64 clients of one loop would

    start = time.perf_counter()
    async with asyncio.TaskGroup() as tasks:
        for asks in queries.clients:
            tasks.create_task(client(asks))
    wall = time.perf_counter() - start
    return Load(len(seen) / wall, sorted(seen))


async def _baseline(catalog: str, queries: Queries) -> Load:
    async with DefaultDataManager(catalog=catalog) as manager:
        return await _in_process(manager, queries)


def queries_figures(count: int, per_client: int, rounds: int) -> list[Figure]:
    work = Workload(count, 1)
    queries = Queries.draw(work, per_client)
    served_loads: list[Load] = []
    local_loads: list[Load] = []
    with tempfile.TemporaryDirectory(prefix="sfd-bench-service-") as directory:
        catalog = os.path.join(directory, "catalog.sqlite")
        asyncio.run(_fill(catalog, work))
        for _ in range(rounds):
            local_loads.append(asyncio.run(_baseline(catalog, queries)))
            with serving(catalog) as served:  # a fresh service each round
                served_loads.append(asyncio.run(_over_http(served, queries)))
    rate = min(load.rate for load in served_loads)
    p99 = max(load.percentile(0.99) for load in served_loads)
    p50 = max(load.percentile(0.5) for load in served_loads)
    baseline = min(load.rate for load in local_loads)
    return [
        Figure(
            f"get_source_location over HTTP, 64 clients, requests/s ({queries.count:,} per round)",
            rate,
            "/s",
            baseline,
            ">= 5,000/s",
        ),
        Figure("p99 latency over HTTP, ms", p99 * 1000, "ms", None, "< 20 ms"),
        Figure("p50 latency over HTTP, ms", p50 * 1000, "ms", None, ""),
    ]


# -- transfers -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Copies:
    """``files`` source files, each copied to two paths on an SSH host: with two
    destinations every byte passes through the block pool (one destination would go by
    the connector's own route, which holds no blocks)."""

    base: Path
    files: int
    config: Path

    def source(self, number: int) -> str:
        return str(self.base / "src" / f"{number:03d}")

    def targets(self, number: int) -> list[tuple[ExecutionLocation, str]]:
        return [(HOST, str(self.base / "remote" / f"{number:03d}-{copy}")) for copy in "ab"]

    def write_sources(self, size: int) -> list[str]:
        """Each source file, ``size`` bytes, all different; their SHA-256 digests."""
        digests = []
        block = random.Random(3).randbytes(MiB)
        for number in range(self.files):
            data = number.to_bytes(8, "big") + block[8:]
            digest = hashlib.sha256()
            with open(self.source(number), "wb") as file:
                for _ in range(size // MiB):
                    file.write(data)
                    digest.update(data)
            digests.append(digest.hexdigest())
        return digests

    def verify_and_clear(self, digests: Sequence[str]) -> None:
        """Check every copy equals its source, then delete it."""
        for number, expected in enumerate(digests):
            for _, path in self.targets(number):
                if _digest(path) != expected:
                    raise RuntimeError(f"{path} differs from its source")
                os.unlink(path)


def _digest(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(MiB):
            digest.update(chunk)
    return digest.hexdigest()


@contextlib.contextmanager
def _ssh_host(base: Path) -> Iterator[Path]:
    """An sshd on 127.0.0.1 and a configuration naming it deployment ``ssh``."""
    key = client_key(base)
    server = start_server("host-a", base / "sshd", key)
    try:
        config = base / "streamflow-data.toml"
        config.write_text(
            f"""[deployments.ssh]
type = "ssh"
nodes = [{{ hostname = "127.0.0.1", port = {server.port}, name = "host-a" }}]
username = "{login_user()}"
client_keys = ["{key}"]
known_hosts = "{known_hosts([server], base / "known_hosts")}"
"""
        )
        yield config
    finally:
        server.stop()


async def _copy_all(
    managers: Sequence[DefaultDataManager | RemoteDataManager], copies: Copies
) -> float:
    """Seconds for every copy, submitted at once, shared out among ``managers``."""
    start = time.perf_counter()
    async with asyncio.TaskGroup() as tasks:
        for number in range(copies.files):
            manager = managers[number % len(managers)]
            manager.register_path(LOCAL, copies.source(number))
            tasks.create_task(
                manager.transfer_to(LOCAL, copies.source(number), copies.targets(number))
            )
    return time.perf_counter() - start


async def _remote_round(served: Served, copies: Copies) -> float:
    async with contextlib.AsyncExitStack() as stack:
        managers = [
            await stack.enter_async_context(RemoteDataManager(served.url)) for _ in range(10)
        ]
        return await _copy_all(managers, copies)


async def _local_round(copies: Copies, catalog: str) -> float:
    configuration = load_configuration(str(copies.config))
    configuration = dataclasses.replace(configuration, catalog=CatalogSettings(path=catalog))
    async with configuration.create_manager() as manager:
        return await _copy_all([manager], copies)


def transfer_figures(size_mib: int, rounds: int, files: int = 100) -> list[Figure]:
    remote, local, peaks, rests, pools = [], [], [], [], []
    settings = TransferSettings()
    pool = settings.block_count * settings.block_size
    with tempfile.TemporaryDirectory(prefix="sfd-bench-service-") as directory:
        base = Path(directory)
        base.chmod(0o755)  # the SSH login user reads the sources
        (base / "src").mkdir()
        owned_directory(base / "remote")
        with _ssh_host(base) as config:
            copies = Copies(base, files, config)
            digests = copies.write_sources(size_mib * MiB)
            env = {"STREAMFLOW_DATA_CONFIG": str(config)}
            for number in range(rounds):
                local.append(asyncio.run(_local_round(copies, str(base / f"local-{number}.db"))))
                copies.verify_and_clear(digests)
                with serving(str(base / f"served-{number}.db"), env) as served:
                    rests.append(served.status("VmRSS"))
                    remote.append(asyncio.run(_remote_round(served, copies)))
                    peaks.append(served.status("VmHWM"))
                    pools.append(served.metric("streamflow_data_block_pool_peak_bytes"))
                copies.verify_and_clear(digests)
    rest = max(rests)
    return [
        Figure(
            f"{files} transfers of {size_mib} MiB, each to two paths on an SSH host, "
            "10 clients, ms (baseline: the same in-process)",
            max(remote) * 1000,
            "ms",
            max(local) * 1000,
            "",
        ),
        Figure("service RSS at rest, MiB", rest / MiB, "MiB", None, ""),
        Figure("block pool peak, MiB", max(pools) / MiB, "MiB", None, ""),
        Figure(
            f"service peak RSS in the transfers over rest, MiB (block pool: {pool // MiB} MiB)",
            (max(peaks) - rest) / MiB,
            "MiB",
            None,
            f"<= {pool // MiB + OVERHEAD_MIB} MiB (pool + {OVERHEAD_MIB} MiB)",
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--paths", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=500, help="per client, per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--size", type=int, default=8, help="MiB per transferred file")
    args, _ = parser.parse_known_args()
    print_table(
        f"Service: replica queries over HTTP ({args.paths:,} paths; worst of {args.rounds})",
        queries_figures(args.paths, args.requests, args.rounds),
    )
    print_table(
        f"Service: 100 transfers at once (worst of {args.rounds})",
        transfer_figures(args.size, args.rounds),
    )


if __name__ == "__main__":
    main()
