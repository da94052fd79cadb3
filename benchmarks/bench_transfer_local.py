"""Local transfers against the tools run beside them: ``cp`` and ``cp -r``.

- 1 GiB file local -> local (writable): throughput ratio against ``cp``.
- 1 GiB file local -> 4 local destinations (four "hosts" rooted in separate directories,
  streamed through the engine): source bytes read, and wall time against one destination,
  on this machine's disk and on tmpfs (/dev/shm). On the disk, writing four copies is bound
  by the disk's write rate; tmpfs shows what the engine itself does with four destinations.
- Peak RSS of a process copying a 4 GiB file with the default settings.
- 10,000 files of 4 KiB local -> local (writable): files/s ratio against ``cp -r``.

Every round writes into fresh directories (this disk is slow to re-create deleted trees),
and every timed run starts after a ``sync``, so that the writeback of earlier runs does not
slow it down;
the scratch directory is removed at the end. Each figure is the median of ``--rounds``
(the comparisons with ``cp`` of two more, with the order alternating): on this disk the same
``cp`` of 1 GiB took from 0.6 s to 3.7 s, so a best-of rewards luck.

Run: ``python -m benchmarks.bench_transfer_local`` (``nox -s bench`` runs it).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from statistics import median

from benchmarks.common import Figure, print_table
from streamflow_data import DefaultDataManager, ExecutionLocation, TransferSettings
from tests.wrappers import WrappingConnector

GiB = 1024**3
LOCAL = ExecutionLocation("local", "localhost", local=True)


def make_file(path: Path, size: int) -> None:
    chunk = os.urandom(16 * 1024 * 1024)
    with path.open("wb") as file:
        for _ in range(size // len(chunk)):
            file.write(chunk)


def make_small_files(root: Path, count: int, size: int) -> None:
    data = os.urandom(size)
    for index in range(count):
        directory = root / f"d{index // 1000:02d}"
        directory.mkdir(parents=True, exist_ok=True)
        (directory / f"f{index:05d}").write_bytes(data)


def alternate(round_: int) -> tuple[bool, bool]:
    """Which of (ours, baseline) runs first in a round: it alternates, so that neither
    always inherits the other's writeback."""
    return (True, False) if round_ % 2 else (False, True)


def run_command(*command: str) -> float:
    os.sync()  # start clean: the writeback of earlier copies would weigh on this one
    started = time.perf_counter()
    subprocess.run(command, check=True)
    return time.perf_counter() - started


def run_parallel(commands: list[list[str]]) -> float:
    """Seconds for ``commands`` run all at once."""
    os.sync()
    started = time.perf_counter()
    processes = [subprocess.Popen(command) for command in commands]
    for process in processes:
        if process.wait():
            raise subprocess.CalledProcessError(process.returncode, process.args)
    return time.perf_counter() - started


async def copy_writable(source: Path, target: Path) -> float:
    async with DefaultDataManager() as manager:
        manager.register_path(LOCAL, str(source))
        await asyncio.to_thread(os.sync)
        started = time.perf_counter()
        await manager.transfer_data(LOCAL, str(source), [LOCAL], str(target), writable=True)
        return time.perf_counter() - started


async def fan_out(scratch: Path, source: Path, count: int, round_: int) -> tuple[float, int]:
    """Stream ``source`` to ``count`` rooted hosts; returns seconds and source bytes read."""
    counted = WrappingConnector()
    hosts = {"src": counted}
    for index in range(count):
        root = scratch / f"fan{round_}-{count}-{index}"
        root.mkdir()
        hosts[f"h{index}"] = WrappingConnector(str(root))
    async with DefaultDataManager(hosts) as manager:
        src = ExecutionLocation("src", "localhost", local=True)
        manager.register_path(src, str(source))
        targets = [ExecutionLocation(f"h{i}", "localhost", local=True) for i in range(count)]
        await asyncio.to_thread(os.sync)
        started = time.perf_counter()
        await manager.transfer_data(src, str(source), targets, "/copy.bin")
        return time.perf_counter() - started, counted.bytes_read


PEAK_RSS_SCRIPT = """
import asyncio, sys
from benchmarks.common import peak_rss_bytes
from streamflow_data import DefaultDataManager, ExecutionLocation, LocalConnector
async def main():
    local = ExecutionLocation("local", "localhost", local=True)
    other = ExecutionLocation("scratch", "localhost", local=True)
    async with DefaultDataManager({"scratch": LocalConnector()}) as manager:
        manager.register_path(local, sys.argv[1])
        await manager.transfer_data(local, sys.argv[1], [other], sys.argv[2])
asyncio.run(main())
print(peak_rss_bytes())
"""


def peak_rss(source: Path, target: Path) -> int:
    result = subprocess.run(
        [sys.executable, "-c", PEAK_RSS_SCRIPT, str(source), str(target)],
        check=True,
        capture_output=True,
        text=True,
    )
    return int(result.stdout.split()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--size", type=int, default=1, help="GiB of the large file")
    parser.add_argument("--small-files", type=int, default=10_000)
    args = parser.parse_args()
    size = args.size * GiB
    mib_s = size / 2**20
    scratch = Path(tempfile.mkdtemp(prefix="sfd-bench-", dir=os.environ.get("BENCH_DIR")))
    try:
        small = scratch / "small"
        make_small_files(small, args.small_files, 4096)
        cp_small, our_small = [], []
        for round_ in range(args.rounds + 2):
            for ours_first in alternate(round_):
                if ours_first:
                    our_small.append(asyncio.run(copy_writable(small, scratch / f"sfdr{round_}")))
                else:
                    cp_small.append(
                        run_command("cp", "-r", str(small), str(scratch / f"cpr{round_}"))
                    )
        big = scratch / "big.bin"
        make_file(big, size)
        cp_times, our_times = [], []
        for round_ in range(args.rounds + 2):
            for ours_first in alternate(round_):
                if ours_first:
                    our_times.append(asyncio.run(copy_writable(big, scratch / f"sfd{round_}.bin")))
                else:
                    cp_times.append(run_command("cp", str(big), str(scratch / f"cp{round_}.bin")))
        fan_figures = []
        shm = Path("/dev/shm")
        for label, where in [("disk", scratch), ("tmpfs", shm if shm.is_dir() else None)]:
            if where is None:
                continue
            place = Path(tempfile.mkdtemp(prefix="sfd-fan-", dir=where))
            try:
                source = place / "big.bin"
                if source != big:
                    shutil.copyfile(big, source)
                one, four, reads, cp_one, cp_four = [], [], [], [], []
                for round_ in range(args.rounds):
                    one.append(asyncio.run(fan_out(place, source, 1, round_))[0])
                    seconds, read = asyncio.run(fan_out(place, source, 4, round_))
                    four.append(seconds)
                    reads.append(read)
                    # The machine's own cost of writing four copies: 1 cp, then 4 cp at once.
                    cp_one.append(run_command("cp", str(source), str(place / f"c{round_}")))
                    copies = [["cp", str(source), str(place / f"c{round_}-{i}")] for i in range(4)]
                    cp_four.append(run_parallel(copies))
                    for host in [*place.glob("fan*"), *place.glob("c*")]:
                        if host.is_dir():
                            shutil.rmtree(host)
                        else:
                            host.unlink()
            finally:
                shutil.rmtree(place, ignore_errors=True)
            fan_figures += [
                Figure(f"1 GiB -> 1 destination ({label}), MiB/s", mib_s / median(one), "MiB/s"),
                Figure(
                    f"1 GiB -> 4 destinations ({label}), wall time / 1 destination",
                    100 * median(four) / median(one),
                    "%",
                    None,
                    "<= 150%",
                ),
                Figure(
                    f"4 cp at once / 1 cp ({label}): the machine's cost of 4 copies",
                    100 * median(cp_four) / median(cp_one),
                    "%",
                ),
                Figure(
                    f"1 GiB -> 4 destinations ({label}), source bytes read / file size",
                    100 * max(reads) / size,
                    "%",
                    None,
                    "= 100%",
                ),
            ]
        for path in scratch.glob("*.bin"):
            if path != big:
                path.unlink()
        huge = scratch / "huge.bin"
        make_file(huge, 4 * GiB)
        rss = peak_rss(huge, scratch / "huge-copy.bin")
        huge.unlink()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    files = args.small_files
    print_table(
        f"Local transfers ({args.size} GiB file, {files:,} files of 4 KiB; median of "
        f"{args.rounds}; defaults: {TransferSettings().memory_bound // 2**20} MiB of blocks)",
        [
            Figure(
                "1 GiB local -> local (writable), MiB/s",
                mib_s / median(our_times),
                "MiB/s",
                mib_s / median(cp_times),
                ">= 0.9x cp",
            ),
            *fan_figures,
            Figure("peak RSS copying 4 GiB", rss / 2**20, "MiB", None, "< 256 MiB"),
            Figure(
                f"{files:,} files of 4 KiB local -> local, files/s",
                files / median(our_small),
                "files/s",
                files / median(cp_small),
                ">= 0.8x cp -r",
            ),
        ],
    )


if __name__ == "__main__":
    main()
