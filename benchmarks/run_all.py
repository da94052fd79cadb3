"""Run every ``benchmarks/bench_*.py`` in its own process and write ``benchmarks/RESULTS.md``.

Each benchmark prints Markdown tables with its figures and their baseline ratios; this
collects them under the date and the machine they were measured on.
"""

from __future__ import annotations

import datetime
import os
import platform
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent


def main() -> None:
    sections = []
    for script in sorted(HERE.glob("bench_*.py")):
        print(f"running {script.name} ...", flush=True)
        result = subprocess.run(
            [sys.executable, "-m", f"benchmarks.{script.stem}", *sys.argv[1:]],
            cwd=HERE.parent,
            capture_output=True,
            text=True,
            check=True,
        )
        print(result.stdout)
        sections.append(result.stdout.strip())
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    header = (
        "# Benchmark results\n\n"
        f"Measured {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC on "
        f"{platform.machine()}, {os.cpu_count()} cores, {memory:.0f} GiB, "
        f"Python {platform.python_version()}. Reproduce with `nox -s bench`.\n"
    )
    (HERE / "RESULTS.md").write_text(header + "\n" + "\n\n".join(sections) + "\n")


if __name__ == "__main__":
    main()
