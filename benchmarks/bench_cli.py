"""What the command line costs on top of the copy itself.

One 4 KiB file copied by ``streamflow-data cp`` (the default catalog file, no progress),
against ``cp`` copying the same file, both as fresh processes; the difference is the
start-up the CLI adds: the interpreter, the imports, the catalog opened and closed. Two
floors measured beside them put that figure in proportion on a noisy machine: the bare
interpreter, and the interpreter importing the standard modules the CLI cannot do without
(asyncio, sqlite3, logging, argparse). pydantic, crc32c and importlib.metadata are not
loaded by such a copy (``tests/cli/test_startup.py`` keeps it so). The package is
byte-compiled first, as a wheel install leaves it. Medians of ``--rounds``
interleaved rounds.

Run: ``python -m benchmarks.bench_cli [--rounds N]``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import Figure, byte_compile, print_table

_FLOOR = "import argparse, asyncio, logging, sqlite3"
"""The standard modules the CLI cannot do without."""


def _seconds(command: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, env=env, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=9)
    rounds = parser.parse_args().rounds
    byte_compile()
    script = shutil.which("streamflow-data", path=os.path.dirname(sys.executable))
    assert script is not None, "the console script is not installed"
    runs: dict[str, list[float]] = {"cp": [], "cli": [], "bare": [], "floor": [], "added": []}
    with tempfile.TemporaryDirectory(prefix="sfd-bench-cli-") as scratch:
        env = {**os.environ, "XDG_STATE_HOME": f"{scratch}/state"}
        env.pop("STREAMFLOW_DATA_CONFIG", None)
        env.pop("STREAMFLOW_DATA_CATALOG", None)
        source = Path(scratch) / "one.bin"
        source.write_bytes(os.urandom(4096))
        copy = [script, "cp", "--no-progress", "-q", str(source)]
        for number in range(rounds):  # interleaved, so that a slow spell hits all alike
            runs["cp"].append(_seconds(["cp", str(source), f"{scratch}/by-cp-{number}"], env))
            runs["cli"].append(_seconds([*copy, f"{scratch}/by-cli-{number}"], env))
            runs["added"].append(runs["cli"][-1] - runs["cp"][-1])
            runs["bare"].append(_seconds([sys.executable, "-c", "pass"], env))
            runs["floor"].append(_seconds([sys.executable, "-c", _FLOOR], env))
    cp, cli, bare, floor, added = (statistics.median(runs[key]) for key in runs)
    print_table(
        f"Command-line start-up: one 4 KiB file (median of {rounds})",
        [
            Figure("streamflow-data cp, one file, ms", cli * 1000, "ms", cp * 1000),
            Figure(
                "start-up added to the copy (CLI - cp), ms", added * 1000, "ms", 300.0, "< 300 ms"
            ),
            Figure("python -c pass, ms", bare * 1000, "ms"),
            Figure("python importing asyncio, sqlite3, logging, argparse, ms", floor * 1000, "ms"),
            Figure("added beyond that floor, ms", (cli - floor) * 1000, "ms"),
        ],
    )


if __name__ == "__main__":
    main()
