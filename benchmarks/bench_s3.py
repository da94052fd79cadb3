"""S3 transfers against boto3's s3transfer, both talking to one moto server over HTTP.

The endpoint is moto's server in its own process on 127.0.0.1 (so that its CPU is not
ours). Figures, each the median of ``--rounds`` rounds with baseline and ours alternating:

* 256 MiB upload and download: ``transfer_data`` (default settings and S3 options)
  against boto3's ``upload_file`` / ``download_file`` with the default ``TransferConfig``.
* 2,000 objects of 16 KiB: a tree uploaded by ``transfer_data`` against a sequential
  boto3 ``put_object`` loop, in objects per second; ten boto3 threads are timed too, to
  show what the endpoint itself can take.
* The endpoint's CPU time per object, read from its process, for the loop and for ours;
  the loop's wall time per object over ours is the most any client can gain over the loop
  on this endpoint (when the endpoint does nothing but serve its requests).

One boto3 client and one data manager serve every round, as a long-lived program would
hold them; each makes one request before the first round, so that neither times its
set-up (the manager would otherwise build its client within the first transfer).

Run: ``python -m benchmarks.bench_s3 [--rounds N]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import boto3
from streamflow_data_s3 import S3Connector, S3Options

from benchmarks.common import Figure, print_table, timed
from streamflow_data import DefaultDataManager, ExecutionLocation, PathNotFoundError

MiB = 1024 * 1024
BIG = 256 * MiB
SMALL_COUNT, SMALL_SIZE = 2000, 16 * 1024
CREDENTIALS = {"aws_access_key_id": "bench", "aws_secret_access_key": "bench"}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _start_moto() -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(200):  # bounded: 20 s
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.1):
                break
        except OSError:
            time.sleep(0.1)
    return server, f"http://127.0.0.1:{port}"


def _cpu_seconds(pid: int) -> float:
    """User and system CPU time a process has used so far (Linux)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Bench:
    def __init__(self, endpoint: str, server: int, directory: Path) -> None:
        self.endpoint = endpoint
        self.server = server
        self.directory = directory
        self.boto = boto3.client(
            "s3", endpoint_url=endpoint, region_name="us-east-1", **CREDENTIALS
        )
        self.boto.create_bucket(Bucket="bench")
        with contextlib.suppress(self.boto.exceptions.ClientError):
            self.boto.head_object(Bucket="bench", Key="warm-up")
        self.big = directory / "big.bin"
        self.big.write_bytes(os.urandom(BIG))
        self.small = directory / "small"
        self.small.mkdir()
        for index in range(SMALL_COUNT):
            (self.small / f"f{index:04d}").write_bytes(os.urandom(SMALL_SIZE))
        self.runner = asyncio.Runner()
        self.manager, self.s3 = self.runner.run(self._open())

    async def _open(self) -> tuple[DefaultDataManager, ExecutionLocation]:
        options = S3Options.model_validate(
            {
                "buckets": ["bench"],
                "endpoint_url": self.endpoint,
                "access_key_id": "bench",
                "secret_access_key": "bench",
            }
        )
        connector = S3Connector(options)
        manager = DefaultDataManager({"s3": connector})
        location = manager.locations("s3")[0]
        with contextlib.suppress(PathNotFoundError):
            await connector.stat(location, "/warm-up")
        return manager, location

    def close(self) -> None:
        self.runner.run(self.manager.close())
        self.runner.close()

    def _ours(self, work: Callable[[], Any]) -> float:
        async def run() -> float:
            start = time.perf_counter()
            await work()
            return time.perf_counter() - start

        return self.runner.run(run())

    def _upload(self, path: Path, target: str) -> Callable[[], Any]:
        local = self.manager.locations()[0]
        self.manager.register_path(local, str(path))
        return lambda: self.manager.transfer_data(local, str(path), [self.s3], target)

    def upload(self, number: int) -> tuple[float, float]:
        boto = timed(lambda: self.boto.upload_file(str(self.big), "bench", f"boto-{number}"))
        return boto, self._ours(self._upload(self.big, f"/ours-{number}"))

    def download(self, number: int) -> tuple[float, float]:
        target = self.directory / f"down-{number}"
        boto = timed(lambda: self.boto.download_file("bench", f"boto-{number}", str(target)))
        target.unlink()
        self.manager.register_path(self.s3, f"/ours-{number}")
        seconds = self._ours(
            lambda: self.manager.transfer_data(
                self.s3, f"/ours-{number}", self.manager.locations(), str(target)
            )
        )
        target.unlink()
        return boto, seconds

    def small_objects(self, number: int) -> dict[str, float]:
        """Objects/s of a sequential boto3 loop, of ten boto3 threads and of ours, and the
        endpoint's CPU seconds per object for the loop and for ours."""
        files = sorted(self.small.iterdir())

        def put(path: Path, prefix: str) -> None:
            key = f"{prefix}/{path.name}"
            self.boto.put_object(Bucket="bench", Key=key, Body=path.read_bytes())

        def loop() -> None:
            for path in files:
                put(path, f"boto-small-{number}")

        def threads() -> None:
            with ThreadPoolExecutor(10) as pool:
                list(pool.map(lambda path: put(path, f"boto-threads-{number}"), files))

        before = _cpu_seconds(self.server)
        boto = timed(loop)
        boto_cpu = _cpu_seconds(self.server) - before
        threaded = timed(threads)
        before = _cpu_seconds(self.server)
        ours = self._ours(self._upload(self.small, f"/small-{number}"))
        ours_cpu = _cpu_seconds(self.server) - before
        return {
            "loop": SMALL_COUNT / boto,
            "threads": SMALL_COUNT / threaded,
            "ours": SMALL_COUNT / ours,
            "loop endpoint cpu": boto_cpu / SMALL_COUNT,
            "ours endpoint cpu": ours_cpu / SMALL_COUNT,
        }


def run(rounds: int) -> list[Figure]:
    server, endpoint = _start_moto()
    directory = Path(tempfile.mkdtemp(prefix="sfd-bench-s3-"))
    try:
        bench = Bench(endpoint, server.pid, directory)
        up, down, small = [], [], []
        try:
            for number in range(rounds):
                up.append(bench.upload(number))
                down.append(bench.download(number))
                small.append(bench.small_objects(number))
        finally:
            bench.close()
    finally:
        server.terminate()
        server.wait()
        shutil.rmtree(directory, ignore_errors=True)
    median = statistics.median
    rate = BIG / MiB

    def of_small(name: str) -> float:
        return median(figures[name] for figures in small)

    return [
        Figure(
            "256 MiB upload",
            rate / median(o for _, o in up),
            "MiB/s",
            rate / median(b for b, _ in up),
            ">= 1.0x upload_file",
        ),
        Figure(
            "256 MiB download",
            rate / median(o for _, o in down),
            "MiB/s",
            rate / median(b for b, _ in down),
            ">= 1.0x download_file",
        ),
        Figure(
            "2,000 x 16 KiB objects",
            of_small("ours"),
            "objects/s",
            of_small("loop"),
            ">= 2x a put_object loop",
        ),
        Figure(
            "same, boto3 with 10 threads (what the endpoint can take)",
            of_small("threads"),
            "objects/s",
            of_small("loop"),
            "-",
        ),
        Figure(
            "endpoint CPU per object: ours (baseline: the loop's)",
            of_small("ours endpoint cpu") * 1e6,
            "µs",
            of_small("loop endpoint cpu") * 1e6,
            "-",
        ),
        Figure(
            "ceiling for any client: 1 / endpoint CPU per object of ours",
            1 / of_small("ours endpoint cpu"),
            "objects/s",
            of_small("loop"),
            "-",
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    args, _ = parser.parse_known_args()
    print_table(
        f"S3 transfers against boto3, moto server on 127.0.0.1 (median of {args.rounds})",
        run(args.rounds),
    )


if __name__ == "__main__":
    main()
