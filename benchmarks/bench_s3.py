"""S3 transfers against boto3's s3transfer, both talking to one moto server over HTTP.

The endpoint is moto's server in its own process on 127.0.0.1 (so that its CPU is not
ours). Figures, each the median of ``--rounds`` rounds with baseline and ours alternating:

* 256 MiB upload and download: ``transfer_data`` (default settings and S3 options)
  against boto3's ``upload_file`` / ``download_file`` with the default ``TransferConfig``.
* 2,000 objects of 16 KiB: a tree uploaded by ``transfer_data`` against a sequential
  boto3 ``put_object`` loop, in objects per second; ten boto3 threads are timed too, to
  show what the endpoint itself can take.

Run: ``python -m benchmarks.bench_s3 [--rounds N]``.
"""

from __future__ import annotations

import argparse
import asyncio
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

from benchmarks.common import Figure, print_table
from streamflow_data import DefaultDataManager

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


def _timed(work: Callable[[], object]) -> float:
    start = time.perf_counter()
    work()
    return time.perf_counter() - start


class Bench:
    def __init__(self, endpoint: str, directory: Path) -> None:
        self.endpoint = endpoint
        self.directory = directory
        self.boto = boto3.client(
            "s3", endpoint_url=endpoint, region_name="us-east-1", **CREDENTIALS
        )
        self.boto.create_bucket(Bucket="bench")
        self.big = directory / "big.bin"
        self.big.write_bytes(os.urandom(BIG))
        self.small = directory / "small"
        self.small.mkdir()
        for index in range(SMALL_COUNT):
            (self.small / f"f{index:04d}").write_bytes(os.urandom(SMALL_SIZE))

    def _ours(self, work: Callable[[DefaultDataManager, Any], Any]) -> float:
        async def run() -> float:
            options = S3Options.model_validate(
                {
                    "buckets": ["bench"],
                    "endpoint_url": self.endpoint,
                    "access_key_id": "bench",
                    "secret_access_key": "bench",
                }
            )
            async with DefaultDataManager({"s3": S3Connector(options)}) as manager:
                location = manager.locations("s3")[0]
                start = time.perf_counter()
                await work(manager, location)
                return time.perf_counter() - start

        return asyncio.run(run())

    def upload(self, number: int) -> tuple[float, float]:
        boto = _timed(lambda: self.boto.upload_file(str(self.big), "bench", f"boto-{number}"))

        async def ours(manager: DefaultDataManager, location: Any) -> None:
            local = manager.locations()[0]
            manager.register_path(local, str(self.big))
            await manager.transfer_data(local, str(self.big), [location], f"/ours-{number}")

        return boto, self._ours(ours)

    def download(self, number: int) -> tuple[float, float]:
        target = self.directory / f"down-{number}"
        boto = _timed(lambda: self.boto.download_file("bench", f"boto-{number}", str(target)))
        target.unlink()

        async def ours(manager: DefaultDataManager, location: Any) -> None:
            manager.register_path(location, f"/ours-{number}")
            await manager.transfer_data(
                location, f"/ours-{number}", manager.locations(), str(target)
            )

        seconds = self._ours(ours)
        target.unlink()
        return boto, seconds

    def small_objects(self, number: int) -> tuple[float, float, float]:
        """Objects/s of a sequential boto3 loop, of ten boto3 threads, and ours."""
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

        boto = _timed(loop)
        threaded = _timed(threads)

        async def ours(manager: DefaultDataManager, location: Any) -> None:
            local = manager.locations()[0]
            manager.register_path(local, str(self.small))
            await manager.transfer_data(local, str(self.small), [location], f"/small-{number}")

        return SMALL_COUNT / boto, SMALL_COUNT / threaded, SMALL_COUNT / self._ours(ours)


def run(rounds: int) -> list[Figure]:
    server, endpoint = _start_moto()
    directory = Path(tempfile.mkdtemp(prefix="sfd-bench-s3-"))
    try:
        bench = Bench(endpoint, directory)
        up, down, small = [], [], []
        for number in range(rounds):
            up.append(bench.upload(number))
            down.append(bench.download(number))
            small.append(bench.small_objects(number))
    finally:
        server.terminate()
        server.wait()
        shutil.rmtree(directory, ignore_errors=True)
    median = statistics.median
    rate = BIG / MiB
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
            median(o for _, _, o in small),
            "objects/s",
            median(b for b, _, _ in small),
            ">= 2x a put_object loop",
        ),
        Figure(
            "same, boto3 with 10 threads (what the endpoint can take)",
            median(t for _, t, _ in small),
            "objects/s",
            median(b for b, _, _ in small),
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
