"""Helpers shared by the benchmarks: timing, memory and the result table."""

from __future__ import annotations

import platform
import time
from collections.abc import Callable
from dataclasses import dataclass


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
