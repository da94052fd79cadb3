"""Helpers shared by the benchmarks: timing, memory and the result table."""

from __future__ import annotations

import compileall
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

_ROOT = Path(__file__).parent.parent
PACKAGES = (
    _ROOT / "streamflow_data",
    *sorted(p for p in _ROOT.glob("plugins/*/streamflow_data_*") if p.is_dir()),
)
"""The project's packages: the core and every plugin."""


def byte_compile() -> None:
    """Byte-compile the project's packages, as a wheel install leaves them, so that a
    fresh process timed imports them as a user's would rather than compiling each module
    (an editable install under ``PYTHONDONTWRITEBYTECODE`` compiles them every time)."""
    for package in PACKAGES:
        compileall.compile_dir(str(package), quiet=1)


def rss_bytes() -> int:
    """The current resident set size of this process."""
    with open("/proc/self/statm") as statm:
        pages = int(statm.read().split()[1])
    return pages * 4096


def peak_rss_bytes() -> int:
    """The most this process has had resident (``VmHWM``).

    Not ``getrusage``'s ``ru_maxrss``: Linux carries that across ``fork`` and ``exec``, so
    a child started by a big benchmark process reported the parent's size (a child that
    peaked at 9 MiB said 211 MiB under a parent holding 200 MiB).
    """
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def timed(function: Callable[[], object]) -> float:
    """Seconds taken by one call of ``function``."""
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


@dataclass(frozen=True, slots=True)
class Figure:
    """One measured figure, with its baseline and target."""

    name: str
    value: float
    unit: str
    baseline: float | None = None
    target: str = ""

    def row(self) -> str:
        ratio = f"{self.value / self.baseline:.2f}x" if self.baseline else "-"
        baseline = f"{self.baseline:,.0f}" if self.baseline else "-"
        value = f"{self.value:,.0f} {self.unit}".strip()
        return f"| {self.name} | {value} | {baseline} | {ratio} | {self.target} |"


def print_table(title: str, figures: list[Figure]) -> None:
    """Print figures as a Markdown table, with the machine they were measured on."""
    print(f"\n## {title}\n")
    print(
        f"machine: {platform.machine()}, {platform.python_implementation()} "
        f"{platform.python_version()}, {platform.node()}\n"
    )
    print("| figure | value | baseline | ratio | target |")
    print("| --- | --- | --- | --- | --- |")
    for figure in figures:
        print(figure.row())
