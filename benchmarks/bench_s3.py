"""S3 transfers against boto3's s3transfer, both talking to one moto server, over HTTP and
over HTTPS (a throwaway certificate for 127.0.0.1, trusted through ``AWS_CA_BUNDLE``):
HTTPS is how S3 is used, and over plain HTTP botocore hashes every payload (SHA-256).

The endpoint is moto's server in its own process on 127.0.0.1 (so that its CPU is not
ours). Figures, each the median of ``--rounds`` rounds; which client goes first changes
from one round to the next:

* 256 MiB upload and download: ``transfer_data`` (default settings and S3 options)
  against boto3's ``upload_file`` / ``download_file`` with the default ``TransferConfig``;
  both download the same object.
* 2,000 objects of 16 KiB: a tree uploaded by ``transfer_data`` against boto3
  ``put_object`` from ten threads (what a user would run), in objects per second; a
  sequential ``put_object`` loop is timed too.
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


def _certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key, written in ``directory``."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert, private = directory / "cert.pem", directory / "key.pem"
    cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert, private


def _start_moto(tls: tuple[Path, Path] | None) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    command = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    if tls is not None:
        command += ["-c", str(tls[0]), "-k", str(tls[1])]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(200):  # bounded: 20 s
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.1):
                break
        except OSError:
            time.sleep(0.1)
    return server, f"{'https' if tls else 'http'}://127.0.0.1:{port}"


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
        def boto() -> float:
            return timed(lambda: self.boto.upload_file(str(self.big), "bench", f"boto-{number}"))

        def ours() -> float:
            return self._ours(self._upload(self.big, f"/ours-{number}"))

        return _alternated(number, boto, ours)

    def download(self, number: int) -> tuple[float, float]:
        """Both download the object boto3 uploaded in this round."""
        target = self.directory / f"down-{number}"
        self.manager.register_path(self.s3, f"/boto-{number}")

        def boto() -> float:
            seconds = timed(lambda: self.boto.download_file("bench", f"boto-{number}", str(target)))
            target.unlink()
            return seconds

        def ours() -> float:
            seconds = self._ours(
                lambda: self.manager.transfer_data(
                    self.s3, f"/boto-{number}", self.manager.locations(), str(target)
                )
            )
            target.unlink()
            return seconds

        return _alternated(number, boto, ours)

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

        def ours_timed() -> tuple[float, float]:
            before = _cpu_seconds(self.server)
            seconds = self._ours(self._upload(self.small, f"/small-{number}"))
            return seconds, _cpu_seconds(self.server) - before

        before = _cpu_seconds(self.server)
        boto = timed(loop)
        boto_cpu = _cpu_seconds(self.server) - before
        if number % 2:
            ours, ours_cpu = ours_timed()
            threaded = timed(threads)
        else:
            threaded = timed(threads)
            ours, ours_cpu = ours_timed()
        return {
            "loop": SMALL_COUNT / boto,
            "threads": SMALL_COUNT / threaded,
            "ours": SMALL_COUNT / ours,
            "loop endpoint cpu": boto_cpu / SMALL_COUNT,
            "ours endpoint cpu": ours_cpu / SMALL_COUNT,
        }


def _alternated(
    number: int, boto: Callable[[], float], ours: Callable[[], float]
) -> tuple[float, float]:
    """(boto3's time, ours), ours first in odd rounds."""
    if number % 2:
        ours_time = ours()
        return boto(), ours_time
    boto_time = boto()
    return boto_time, ours()


def run(rounds: int, tls: bool) -> list[Figure]:
    directory = Path(tempfile.mkdtemp(prefix="sfd-bench-s3-"))
    certificate = _certificate(directory) if tls else None
    if certificate is not None:
        os.environ["AWS_CA_BUNDLE"] = str(certificate[0])  # botocore's and aiobotocore's
    server, endpoint = _start_moto(certificate)
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
        os.environ.pop("AWS_CA_BUNDLE", None)
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
            "2,000 x 16 KiB objects (baseline: put_object from 10 threads)",
            of_small("ours"),
            "objects/s",
            of_small("threads"),
            ">= 1.0x",
        ),
        Figure(
            "same, against a sequential put_object loop",
            of_small("ours"),
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
    for tls in (False, True):
        print_table(
            f"S3 transfers against boto3, moto server on 127.0.0.1 over "
            f"{'HTTPS' if tls else 'HTTP'} (median of {args.rounds})",
            run(args.rounds, tls),
        )


if __name__ == "__main__":
    main()
