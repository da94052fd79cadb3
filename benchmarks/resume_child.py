"""Copy one file through a data manager with a catalog, printing progress: a process to kill.

The resume test and benchmark run this, ``kill -9`` it part way, run it again and compare
what the second run moved with what the first left missing. The source is read through
a connector that sleeps before each read (``--delay`` seconds per block), so that
"part way" lasts long enough to be hit; the rerun reads at full speed. The destination is
the local file system, or a connector given by ``--destination TYPE OPTIONS_JSON``.

Prints ``progress BYTES`` lines while copying and a final
``result moved=BYTES skipped=BYTES nothing_to_do=BOOL transfer=ID`` line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass

from streamflow_data import (
    CatalogSettings,
    Connector,
    DefaultDataManager,
    LocalConnector,
    Reader,
    TransferProgress,
    create_connector,
)
from streamflow_data.catalog import Catalog
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


@dataclass(frozen=True, slots=True)
class Target:
    """A destination connector: its type and the JSON of its options."""

    kind: str
    options: str

    def arguments(self) -> list[str]:
        return ["--destination", self.kind, self.options]


async def copy(
    catalog: str, src: str, dst: str, delay: float, target: Target | None
) -> TransferProgress:
    last: list[TransferProgress] = []

    def report(progress: TransferProgress) -> None:
        last[:] = [progress]
        print(f"progress {progress.bytes_done}", flush=True)

    connectors: Mapping[str, Connector] = {"source": SlowSourceConnector(delay)}
    if target is not None:
        destination = create_connector(target.kind, json.loads(target.options))
        connectors = {**connectors, "destination": destination}
    async with DefaultDataManager(connectors, catalog=catalog, listeners=[report]) as manager:
        source = manager.locations("source")[0]
        to = manager.locations("destination")[:1] if target else manager.locations()
        manager.register_path(source, src)
        await manager.transfer_data(source, src, to, dst, writable=True)
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


def _command(catalog: str, src: str, dst: str, target: Target | None) -> list[str]:
    command = [sys.executable, "-m", "benchmarks.resume_child", catalog, src, dst]
    return command + (target.arguments() if target else [])


def _settled(path: str) -> None:
    """Wait until the file at ``path`` has kept its size for 0.3 s (at most 10 s)."""
    last = -1
    for _ in range(100):  # bounded: 10 s
        size = os.path.getsize(path) if os.path.exists(path) else 0
        if size == last:
            return
        last = size
        time.sleep(0.3)


def _present(path: str, src: str, block: int) -> int:
    """Bytes of ``path`` equal to ``src`` at the same offsets, counted by blocks."""
    present = 0
    with open(path, "rb") as partial, open(src, "rb") as source:
        while expected := source.read(block):
            if partial.read(block) == expected:
                present += len(expected)
    return present


def kill_halfway_and_rerun(
    catalog: str,
    src: str,
    dst: str,
    delay: float,
    fraction: float = 0.5,
    target: Target | None = None,
) -> Interrupted:
    """Copy ``src`` to ``dst``, ``kill -9`` the copy once ``fraction`` of it is written,
    measure what is missing, then copy again and report what the rerun moved.

    The kill takes the copy's whole process group, as a batch scheduler ends a job: its
    ``ssh`` processes too, which would otherwise finish the streams they were given after
    the copy died. The partial file is read where the destination's resume token names
    it, on this machine (an SSH host on 127.0.0.1 shares its file system), once it has
    stopped growing (the host writes what reached it before the connection dropped)."""
    size = os.path.getsize(src)
    command = [*_command(catalog, src, dst, target), "--delay", str(delay)]
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, text=True, cwd=_ROOT, start_new_session=True
    ) as child:
        assert child.stdout is not None
        for line in child.stdout:  # bounded: the child ends after the copy
            if line.startswith("progress ") and int(line.split()[1]) >= size * fraction:
                break
        os.killpg(child.pid, signal.SIGKILL)
    tokens = asyncio.run(_resume_tokens(catalog))
    token = next((token for token in tokens if token), None)
    if token is not None:
        _settled(token)
    # The copy's bytes are in its partial file, or at its path if the kill came after
    # the commit.
    partial = next((path for path in (token, dst) if path and os.path.exists(path)), None)
    present = 0 if partial is None else _present(partial, src, 4 * 1024 * 1024)
    rerun = subprocess.run(
        _command(catalog, src, dst, target), capture_output=True, text=True, cwd=_ROOT
    )
    if rerun.returncode:
        raise RuntimeError(f"the rerun failed: {rerun.stderr.strip().splitlines()[-1:]}")
    result = rerun.stdout.strip().splitlines()[-1]
    fields = dict(item.split("=") for item in result.split()[1:])
    return Interrupted(size - present, int(fields["moved"]), int(fields["skipped"]), result)


async def _resume_tokens(catalog: str) -> list[str | None]:
    """The resume tokens the journal in ``catalog`` holds (a file or a PostgreSQL URL)."""
    opened = await Catalog.open(CatalogSettings(path=catalog))
    try:
        return [row[0] for row in await opened.database.fetch_all("SELECT token FROM file_states")]
    finally:
        await opened.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("catalog")
    parser.add_argument("src")
    parser.add_argument("dst")
    parser.add_argument("--delay", type=float, default=0.0)
    parser.add_argument("--destination", nargs=2, metavar=("TYPE", "OPTIONS_JSON"))
    args = parser.parse_args()
    target = Target(*args.destination) if args.destination else None
    done = asyncio.run(copy(args.catalog, args.src, args.dst, args.delay, target))
    [destination] = done.destinations
    print(
        f"result moved={done.bytes_moved} skipped={destination.bytes_skipped} "
        f"nothing_to_do={done.nothing_to_do} transfer={done.transfer_id}",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
