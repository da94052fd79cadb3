"""Running the console script as a user does: in a subprocess, or on a pseudo-terminal."""

from __future__ import annotations

import os
import pty
import select
import shutil
import subprocess
import sys
import time
from pathlib import Path

SCRIPT = shutil.which("streamflow-data", path=os.path.dirname(sys.executable))


def run(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """The script's exit status and output (the tests' environment, plus ``env``)."""
    assert SCRIPT is not None, "the console script is not installed"
    return subprocess.run(
        [SCRIPT, *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        check=False,
        env={**os.environ, **(env or {})},
    )


def run_on_terminal(*args: str, cwd: Path | None = None) -> tuple[int, str]:
    """The exit status and what a terminal would show (stdout and stderr together)."""
    assert SCRIPT is not None, "the console script is not installed"
    controller, terminal = pty.openpty()
    process = subprocess.Popen(
        [SCRIPT, *args], stdin=terminal, stdout=terminal, stderr=terminal, cwd=cwd
    )
    os.close(terminal)
    shown = bytearray()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        ready, _, _ = select.select([controller], [], [], 0.5)
        if not ready:
            if process.poll() is not None:
                break
            continue
        try:
            data = os.read(controller, 65536)
        except OSError:  # the terminal closed: the process exited
            break
        if not data:
            break
        shown += data
    status = process.wait(timeout=30)
    os.close(controller)
    return status, shown.decode("utf-8", "replace")
