"""Copy one file through a data manager with a catalog, printing progress: a process to kill.

The resume test and benchmark run this, ``kill -9`` it halfway, run it again and compare
what the second run moved with what the first left missing. The source is read through
a connector that sleeps before each read (``--delay`` seconds per block), so that
"halfway" lasts long enough to be hit; the rerun reads at full speed.

Prints ``progress BYTES`` lines while copying and a final
``result moved=BYTES skipped=BYTES nothing_to_do=BOOL transfer=ID`` line.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass

from streamflow_data import DefaultDataManager, LocalConnector, Reader, TransferProgress
from streamflow_data.model import ExecutionLocation

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class _SlowReader(Reader):
    def __init__(self, inner: Reader, delay: float) -> None:
        self._inner = inner
        self._delay = delay

    async def read(self, offset: int, size: int) -> bytes:
        await asyncio.sleep(self._delay)
        return await self._inner.read(offset, size)

    async def readinto(self, offset: int, buffer: memoryview) -> int:
        await asyncio.sleep(self._delay)
        return await self._inner.readinto(offset, buffer)

    async def close(self) -> None:
        await self._inner.close()


class SlowSourceConnector(LocalConnector):
    """The local file system, read slowly."""

    def __init__(self, delay: float) -> None:
        super().__init__()
        self.delay = delay

    async def open_reader(self, location: ExecutionLocation, path: str) -> Reader:
        return _SlowReader(await super().open_reader(location, path), self.delay)


async def copy(catalog: str, src: str, dst: str, delay: float) -> TransferProgress:
    last: list[TransferProgress] = []

    def report(progress: TransferProgress) -> None:
        last[:] = [progress]
        print(f"progress {progress.bytes_done}", flush=True)

    connectors: Mapping[str, LocalConnector] = {"source": SlowSourceConnector(delay)}
    async with DefaultDataManager(connectors, catalog=catalog, listeners=[report]) as manager:
        source = manager.locations("source")[0]
        manager.register_path(source, src)
        await manager.transfer_data(source, src, manager.locations(), dst, writable=True)
    return last[0]


@dataclass(frozen=True, slots=True)
class Interrupted:
    """What killing a copy halfway and running it again gave."""

    missing: int
    """Bytes of the file not yet at the destination when the copy was killed."""
    moved: int
    """Bytes the rerun moved."""
    skipped: int
    """Bytes the rerun found already written."""
    result: str
    """The rerun's result line."""


def _run(catalog: str, src: str, dst: str, delay: float) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "benchmarks.resume_child", catalog, src, dst]
    return subprocess.Popen(
        [*command, "--delay", str(delay)], stdout=subprocess.PIPE, text=True, cwd=_ROOT
    )


def _present(path: str, src: str, block: int) -> int:
    """Bytes of ``path`` equal to ``src`` at the same offsets, counted by blocks."""
    present = 0
    with open(path, "rb") as partial, open(src, "rb") as source:
        while expected := source.read(block):
            if partial.read(block) == expected:
                present += len(expected)
    return present


def kill_halfway_and_rerun(
    catalog: str, src: str, dst: str, delay: float, fraction: float = 0.5
) -> Interrupted:
    """Copy ``src`` to ``dst``, ``kill -9`` the copy once ``fraction`` of it is written,
    measure what is missing, then copy again and report what the rerun moved."""
    size = os.path.getsize(src)
    with _run(catalog, src, dst, delay) as child:
        assert child.stdout is not None
        for line in child.stdout:  # bounded: the child ends after the copy
            if line.startswith("progress ") and int(line.split()[1]) >= size * fraction:
                break
        child.send_signal(signal.SIGKILL)
    with sqlite3.connect(catalog) as connection:
        tokens = [row[0] for row in connection.execute("SELECT token FROM file_states")]
    partial = next((token for token in tokens if token), None)
    present = 0 if partial is None else _present(partial, src, 4 * 1024 * 1024)
    rerun = subprocess.run(
        [sys.executable, "-m", "benchmarks.resume_child", catalog, src, dst],
        capture_output=True,
        text=True,
        check=True,
        cwd=_ROOT,
    )
    result = rerun.stdout.strip().splitlines()[-1]
    fields = dict(item.split("=") for item in result.split()[1:])
    return Interrupted(size - present, int(fields["moved"]), int(fields["skipped"]), result)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("catalog")
    parser.add_argument("src")
    parser.add_argument("dst")
    parser.add_argument("--delay", type=float, default=0.0)
    args = parser.parse_args()
    done = asyncio.run(copy(args.catalog, args.src, args.dst, args.delay))
    [destination] = done.destinations
    print(
        f"result moved={done.bytes_moved} skipped={destination.bytes_skipped} "
        f"nothing_to_do={done.nothing_to_do} transfer={done.transfer_id}",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
