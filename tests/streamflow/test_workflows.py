"""Real CWL workflows through ``streamflow run``, with ``dataManager: {type:
streamflow-data}``: the outputs are byte-identical to the same run with StreamFlow's own
data manager, with the steps on the local node, on one SSH deployment, and spread over two
(their data moving from host to host)."""

from __future__ import annotations

import asyncio
import random
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from benchmarks.bench_streamflow import copying
from streamflow_data import DefaultDataManager
from tests.ssh.sshd import SSHServer
from tests.streamflow.conftest import MANAGERS
from tests.streamflow.hosts import streamflow_file
from tests.streamflow.test_answers import tree

WORKFLOW = Path(__file__).parent / "workflow"
STREAMFLOW = [sys.executable, "-m", "streamflow"]


def _inputs(directory: Path) -> None:
    """The job's inputs: a file with its index, a directory with a subdirectory."""
    data = directory / "data"
    (data / "dir" / "sub").mkdir(parents=True)
    rng = random.Random(3)
    (data / "in.txt").write_bytes(rng.randbytes(200_000))
    (data / "in.txt.idx").write_text("index\n")
    for index in range(1, 4):
        (data / "dir" / f"f{index}").write_bytes(rng.randbytes(index * 1000))
    (data / "dir" / "sub" / "x").write_text("deep\n")


async def run_workflow(
    directory: Path,
    manager: str,
    bindings: list[dict[str, Any]],
    servers: list[SSHServer],
    **config: object,
) -> tuple[Path, str]:
    """``streamflow run`` of the workflow in ``directory/manager``, the data manager
    configured with ``config``: its output directory and its log."""
    run = directory / manager
    run.mkdir()
    await asyncio.to_thread(_inputs, run)
    shutil.copy(WORKFLOW / "stages.cwl", run)
    shutil.copy(WORKFLOW / "job.yml", run)
    document = streamflow_file("stages.cwl", bindings, servers, manager, str(run / "sf.db"), config)
    (run / "streamflow.yml").write_text(document)
    process = await asyncio.create_subprocess_exec(
        *STREAMFLOW,
        "run",
        "streamflow.yml",
        "--outdir",
        "out",
        cwd=run,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    output, _ = await process.communicate()
    log = output.decode(errors="replace")
    assert process.returncode == 0, log[-3000:]
    return run / "out", log


def _binding(step: str, deployment: str, workdir: Path) -> dict[str, Any]:
    return {"step": step, "target": {"deployment": deployment, "workdir": str(workdir)}}


@pytest.mark.parametrize("placement", ["local", "ssh", "two hosts"])
async def test_outputs_match_streamflows_own_manager(
    placement: str, tmp_path: Path, remote_dir: Path, ssh_servers: list[SSHServer]
) -> None:
    bindings = {
        "local": [],
        "ssh": [_binding("/", "ssh-a", remote_dir)],
        "two hosts": [
            _binding("/copy", "ssh-a", remote_dir),
            _binding("/report", "ssh-b", remote_dir),
            _binding("/extend", "ssh-a", remote_dir),
        ],
    }[placement]
    runs = [await run_workflow(tmp_path, m, bindings, ssh_servers) for m in MANAGERS]
    outputs = [await asyncio.to_thread(tree, out) for out, _ in runs]
    assert outputs[0] == outputs[1]
    # Ours moved the bytes to and from each host the steps ran on, with the SSH plugin.
    moved = {
        (match[3], int(match[1]), int(match[2]))
        for match in re.finditer(
            r"streamflow-data moved (\d+) bytes from and (\d+) bytes to (\S+)/", runs[1][1]
        )
    }
    hosts = {"local": set(), "ssh": {"ssh-a"}, "two hosts": {"ssh-a", "ssh-b"}}[placement]
    assert {name for name, read, written in moved if read and written} >= hosts
    assert {"copy.txt", "copy.txt.idx", "report.txt", "dir/report-copy.txt", "dir/sub/x"} <= set(
        outputs[1]
    )
    if hosts:  # the StreamFlow benchmark times both managers' copies from their logs
        assert all(0 < copying(log) < 60 for _, log in runs)


async def test_a_catalog_file_keeps_the_runs_transfers(
    tmp_path: Path, remote_dir: Path, ssh_servers: list[SSHServer]
) -> None:
    """With ``catalog`` set, the run's transfers are journaled there, each complete, and
    the command line reads them (``streamflow-data --catalog FILE status``)."""
    catalog = tmp_path / "run.sqlite"
    bindings = [_binding("/", "ssh-a", remote_dir)]
    await run_workflow(tmp_path, MANAGERS[1], bindings, ssh_servers, catalog=str(catalog))
    async with DefaultDataManager(catalog=str(catalog)) as reopened:
        records = await reopened.transfers()
    assert len(records) >= 5 and {record.state for record in records} == {"done"}
    assert any(record.source.startswith("ssh-a/") for record in records)
