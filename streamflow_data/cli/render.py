"""What the command line prints: sizes, durations, tables, and transfer progress."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TextIO

from streamflow_data.transfer.events import DestinationProgress, TransferProgress

__all__ = ["ProgressDisplay", "duration", "human", "table"]

_BAR = 24


def human(size: float) -> str:
    """``size`` bytes in binary units, one decimal (``3.0 KiB``)."""
    units = ["B", "KiB", "MiB", "GiB", "TiB"]
    while size >= 1024 and len(units) > 1:
        size /= 1024
        units.pop(0)
    return f"{size:.1f} {units[0]}"


def duration(seconds: float) -> str:
    """``H:MM:SS``, or ``M:SS`` under an hour."""
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02}:{secs:02}" if hours else f"{minutes}:{secs:02}"


def table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Columns aligned on the widest cell, numbers to the right."""
    cells = [[str(cell) for cell in row] for row in [header, *rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    numeric = [all(isinstance(row[i], int | float) for row in rows) for i in range(len(header))]
    lines = [
        "  ".join(
            cell.rjust(width) if right else cell.ljust(width)
            for cell, width, right in zip(row, widths, numeric, strict=True)
        ).rstrip()
        for row in cells
    ]
    return "\n".join(lines) + "\n"


class ProgressDisplay:
    """A transfer listener that shows how every destination is doing.

    On a terminal (``live``) it redraws one bar per destination in place, at most every
    ``interval`` seconds: bytes, files, rate and time left. Otherwise it writes plain lines,
    which logs and pipes can keep: when a transfer starts, when it ends, and at most every
    ``interval`` seconds in between.
    """

    def __init__(self, stream: TextIO, *, live: bool, interval: float) -> None:
        self._stream = stream
        self._live = live
        self._interval = interval
        self._latest: dict[tuple[str, str, tuple[str, ...]], TransferProgress] = {}
        self._drawn_lines = 0
        self._last_draw = 0.0

    def __call__(self, progress: TransferProgress) -> None:
        key = (
            str(progress.source),
            progress.src_path,
            tuple(f"{d.location}:{d.path}" for d in progress.destinations),
        )
        first = key not in self._latest
        self._latest[key] = progress
        now = time.monotonic()
        if first or progress.finished or now - self._last_draw >= self._interval:
            self._last_draw = now
            self._draw([progress] if not self._live else list(self._latest.values()))
        if progress.finished:
            del self._latest[key]  # drawn for the last time: its lines stay where they are

    def close(self) -> None:
        """Leave the last state on screen, with the cursor below it."""
        self._stream.flush()

    def _draw(self, transfers: list[TransferProgress]) -> None:
        """Write the lines of ``transfers``; live, over the lines drawn last time, the
        finished transfers first so that they scroll away while the others stay below."""
        transfers.sort(key=lambda progress: not progress.finished)
        lines = [
            self._line(progress, destination)
            for progress in transfers
            for destination in progress.destinations
        ]
        if self._live:
            up = f"\x1b[{self._drawn_lines}F" if self._drawn_lines else ""
            self._stream.write(up + "".join(f"\x1b[2K{line}\n" for line in lines))
            self._drawn_lines = sum(
                len(progress.destinations) for progress in transfers if not progress.finished
            )
        else:
            self._stream.writelines(f"{line}\n" for line in lines)
        self._stream.flush()

    def _line(self, progress: TransferProgress, destination: DestinationProgress) -> str:
        total = progress.bytes_total
        done = destination.bytes_done
        moved = done - destination.bytes_skipped
        rate = moved / progress.elapsed if progress.elapsed > 0 else 0.0
        fraction = done / total if total else (1.0 if progress.finished else 0.0)
        if destination.files_failed:
            left = f"{destination.files_failed} failed"
        elif progress.finished:
            left = "done"
        elif rate > 0:
            left = f"ETA {duration((total - done) / rate)}"
        else:
            left = "ETA -:--"
        label = f"{destination.location}:{destination.path}"
        if self._live and len(label) > 32:  # fixed columns on a terminal; logs keep it all
            label = "…" + label[-31:]
        filled = int(fraction * _BAR)
        bar = "#" * filled + "." * (_BAR - filled)
        return (
            f"{label:<32} [{bar}] {fraction:4.0%} {human(done)}/{human(total)} "
            f"{destination.files_done}/{progress.files_total} files {human(rate)}/s {left}"
        )
