"""What a one-file copy loads: the start-up budget of the command line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HEAVY = ("crc32c", "tomllib", "aiohttp", "streamflow_data_ssh", "streamflow_data_s3")
"""Modules a copy with the embedded default configuration must not import (each costs
tens of milliseconds of start-up; see docs/performance.md). pydantic is imported (the
settings are its models), and with it ``importlib.metadata``, where it looks for its own
plugins."""

SCRIPT = """
import sys
from streamflow_data.cli.main import main
status = main(["cp", "--no-progress", "-q", sys.argv[1], sys.argv[2]])
print(status, *sorted(name for name in sys.argv[3:] if name in sys.modules))
"""


def test_a_small_copy_with_the_defaults_imports_nothing_heavy(tmp_path: Path) -> None:
    source = tmp_path / "one.txt"
    source.write_bytes(b"x" * 4096)
    found = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(source), str(tmp_path / "copy.txt"), *HEAVY],
        capture_output=True,
        text=True,
        check=False,
    )
    assert found.returncode == 0, found.stderr
    assert found.stdout.split() == ["0"], f"imported at start-up: {found.stdout.split()[1:]}"
    assert (tmp_path / "copy.txt").read_bytes() == source.read_bytes()


def test_importing_the_package_leaves_the_collector_as_it_found_it() -> None:
    # The package does not touch the collector: that is the embedding program's choice.
    script = (
        "import gc, sys\n"
        "sys.argv[1] == 'off' and gc.disable()\n"
        "import streamflow_data\n"
        "print(gc.isenabled())\n"
    )
    for state, expected in (("on", "True"), ("off", "False")):
        found = subprocess.run(
            [sys.executable, "-c", script, state], capture_output=True, text=True, check=True
        )
        assert found.stdout.strip() == expected
