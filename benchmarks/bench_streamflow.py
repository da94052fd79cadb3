"""A data-heavy CWL workflow through ``streamflow run``: StreamFlow's own data manager
against ours (``dataManager: {type: streamflow-data}``), alternated in one run.

Two sshd servers on 127.0.0.1 are the deployments ``ssh-a`` and ``ssh-b`` (as root, host-b
sees a scratch directory of its own: two hosts' disks, as in ``bench_ssh``); their login
user's shell costs ``--login-ms`` per command (80 ms by default), as on a login node. The
workflow takes a file of ``--size`` MiB (1 GiB by default) and a directory of ``--files``
files of 4 KiB (10,000) from the local node through three steps and back:

1. on ssh-a, copy both (``cp``): the inputs move local -> ssh-a;
2. on ssh-b, copy step 1's copies: they move ssh-a -> ssh-b;
3. on ssh-a, count step 2's copies: they move ssh-b -> ssh-a;

and the workflow's outputs (step 2's copies and the count) move to the local output
directory. Every run is a fresh ``streamflow run`` process; its outputs are checked
(SHA-256 of the big file, the number of small files). The same workflow on a 1 MiB file
and 10 small files gives each manager's fixed cost (process, deployments, scheduling),
which the table subtracts. This project's packages are byte-compiled first, as a wheel
install leaves them and as pip left StreamFlow's.

Where the time goes: both managers log the start and the end of every copy (StreamFlow's
connectors and our plugin), so each run's log gives the seconds during which at least one
copy ran. The rest of the run (StreamFlow's own commands for every file a step passes or
produces, its checksums, the steps' programs) is the same work whichever manager copies;
it bounds what any data manager can gain.

Run: ``python -m benchmarks.bench_streamflow`` (``nox -s bench``; it needs StreamFlow and
the plugin installed, and root to create the login user, as the tests do).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from statistics import median

from benchmarks.bench_ssh import bench_user, everywhere, login_options, two_hosts
from benchmarks.common import Figure, byte_compile, print_table
from tests.ssh.sshd import SSHServer, client_key, known_hosts, owned_directory
from tests.streamflow.hosts import streamflow_file

MANAGERS = ("default", "streamflow-data")

_COPY_LINE = re.compile(
    r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}) +INFO +"
    r"(?:COPYING (?:from )?|(COMPLETED) copy (?:of|from) )(\S+)",
    re.MULTILINE,
)
"""A copy's start or end in a run's log: StreamFlow's connectors log ``COPYING from SRC``
and ``COMPLETED copy from SRC``, our plugin ``COPYING SRC`` and ``COMPLETED copy of SRC``."""

WORKFLOW = """cwlVersion: v1.2
class: Workflow
inputs: {big: File, small: Directory}
outputs:
  big_out: {type: File, outputSource: second/big}
  small_out: {type: Directory, outputSource: second/small}
  count: {type: File, outputSource: third/count}
steps:
  first:
    run: copy.cwl
    in: {big: big, small: small}
    out: [big, small]
  second:
    run: copy.cwl
    in: {big: first/big, small: first/small}
    out: [big, small]
  third:
    run:
      class: CommandLineTool
      baseCommand: [sh, -c]
      arguments: ['(wc -c < "$0"; find "$1" -type f | wc -l) > count.txt', $(inputs.big.path),
                  $(inputs.small.path)]
      inputs: {big: File, small: Directory}
      outputs: {count: {type: File, outputBinding: {glob: count.txt}}}
    in: {big: second/big, small: second/small}
    out: [count]
"""

COPY = """cwlVersion: v1.2
class: CommandLineTool
baseCommand: [sh, -c]
arguments: ['cp "$0" big.bin && cp -r "$1" small', $(inputs.big.path), $(inputs.small.path)]
inputs: {big: File, small: Directory}
outputs:
  big: {type: File, outputBinding: {glob: big.bin}}
  small: {type: Directory, outputBinding: {glob: small}}
"""


def _inputs(directory: Path, size_mib: int, files: int) -> str:
    """Write the inputs into ``directory``; the big file's SHA-256."""
    directory.mkdir(parents=True)
    digest = hashlib.sha256()
    with (directory / "big.bin").open("wb") as out:
        for _ in range(size_mib):
            block = os.urandom(1 << 20)
            digest.update(block)
            out.write(block)
    small = directory / "small"
    small.mkdir()
    for index in range(files):
        (small / f"f{index:05d}").write_bytes(os.urandom(4096))
    return digest.hexdigest()


def _config(manager: str, servers: list[SSHServer], workdir: Path, user: str) -> str:
    bindings = [
        {"step": f"/{step}", "target": {"deployment": f"ssh-{host}", "workdir": str(workdir)}}
        for step, host in (("first", "a"), ("second", "b"), ("third", "a"))
    ]
    return streamflow_file("workflow.cwl", bindings, servers, manager, username=user)


def copying(log: str) -> float:
    """Seconds of a run's ``log`` during which at least one copy ran; RuntimeError when it
    logs none (every run of the workflow copies)."""
    started: dict[str, list[float]] = {}
    spans: list[tuple[float, float]] = []
    for moment, completed, source in _COPY_LINE.findall(log):
        at = datetime.strptime(moment, "%Y-%m-%d %H:%M:%S.%f").timestamp()
        if not completed:
            started.setdefault(source, []).append(at)
        elif started.get(source):
            spans.append((started[source].pop(0), at))
    if not spans:
        raise RuntimeError("no copy in the run's log: has its format changed?")
    total, end = 0.0, float("-inf")
    for start, stop in sorted(spans):
        total += max(0.0, stop - max(start, end))
        end = max(end, stop)
    return total


def run_once(
    manager: str,
    base: Path,
    inputs: Path,
    servers: list[SSHServer],
    user: str,
    digest: str,
    files: int,
) -> tuple[float, float, int | None]:
    """One ``streamflow run``, checked: its wall time in seconds, the seconds it spent
    copying, and the bytes read from ssh-b (ours logs them; step 2's outputs go from there
    to the local node and to ssh-a, in two calls)."""
    run = Path(tempfile.mkdtemp(dir=base / "runs"))
    workdir = owned_directory(base / "scratch" / run.name, user)
    (run / "workflow.cwl").write_text(WORKFLOW)
    (run / "copy.cwl").write_text(COPY)
    (run / "job.yml").write_text(
        json.dumps(
            {
                "big": {"class": "File", "path": str(inputs / "big.bin")},
                "small": {"class": "Directory", "path": str(inputs / "small")},
            }
        )
    )
    (run / "streamflow.yml").write_text(_config(manager, servers, workdir, user))
    os.sync()
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "streamflow", "run", "streamflow.yml", "--outdir", "out"],
        cwd=run,
        capture_output=True,
        text=True,
        check=False,
    )
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise RuntimeError(f"{manager} failed:\n{result.stderr[-3000:]}")
    out = run / "out"
    with (out / "big.bin").open("rb") as copied:
        if hashlib.file_digest(copied, "sha256").hexdigest() != digest:
            raise RuntimeError(f"{manager}: the big file's copy differs")
    count = (out / "count.txt").read_text().split()
    if int(count[-1]) != files or len(os.listdir(out / "small")) != files:
        raise RuntimeError(f"{manager}: {count} small files, not {files}")
    for path in (run, *everywhere(servers, workdir)):
        shutil.rmtree(path, ignore_errors=True)
    read = re.search(
        r"streamflow-data moved (\d+) bytes from and \d+ bytes to ssh-b/", result.stderr
    )
    return elapsed, copying(result.stderr), None if read is None else int(read[1])


def measure(
    base: Path, servers: list[SSHServer], user: str, rounds: int, size_mib: int, files: int
) -> tuple[dict[str, list[float]], dict[str, list[float]], list[int]]:
    """Seconds of each manager's runs, alternated round by round, and of their copies; the
    bytes each of ours read from ssh-b."""
    inputs = base / f"inputs-{size_mib}-{files}"
    digest = _inputs(inputs, size_mib, files)
    times: dict[str, list[float]] = {manager: [] for manager in MANAGERS}
    copies: dict[str, list[float]] = {manager: [] for manager in MANAGERS}
    reads: list[int] = []
    for round_ in range(rounds):
        order = MANAGERS if round_ % 2 == 0 else MANAGERS[::-1]
        for manager in order:
            elapsed, copied, read = run_once(manager, base, inputs, servers, user, digest, files)
            times[manager].append(elapsed)
            copies[manager].append(copied)
            if read is not None:
                reads.append(read)
    shutil.rmtree(inputs)
    return times, copies, reads


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--size", type=int, default=1024, help="MiB of the big file")
    parser.add_argument("--files", type=int, default=10_000, help="small files")
    login_options(parser)
    args = parser.parse_args()
    byte_compile()  # StreamFlow's own modules are, as pip installed them
    base = Path(tempfile.mkdtemp(prefix="sfd-bench-sf-"))
    base.chmod(0o755)
    (base / "runs").mkdir()
    key = client_key(base)
    user = bench_user(args.login_ms)
    servers = two_hosts(base, key, user)
    known_hosts(servers, base / "known_hosts")
    try:
        fixed, _, _ = measure(base, servers, user, args.rounds, 1, 10)
        heavy, copies, reads = measure(base, servers, user, args.rounds, args.size, args.files)
    finally:
        for server in servers:
            server.stop()
        shutil.rmtree(base, ignore_errors=True)
    theirs, ours = (median(heavy[m]) for m in MANAGERS)
    fixed_theirs, fixed_ours = (median(fixed[m]) for m in MANAGERS)
    copying_theirs, copying_ours = (median(copies[m]) for m in MANAGERS)
    rest_ours = median(t - c for t, c in zip(heavy[MANAGERS[1]], copies[MANAGERS[1]], strict=True))
    data = f"{args.size} MiB + {args.files:,} x 4 KiB"
    figures = [
        Figure(f"workflow, {data}: StreamFlow's manager, s", theirs, "s"),
        Figure(f"workflow, {data}: ours, s (baseline: StreamFlow's)", ours, "s", theirs, "<= 0.5x"),
        Figure("fixed cost (1 MiB + 10 files): StreamFlow's manager, s", fixed_theirs, "s"),
        Figure("fixed cost: ours, s (baseline: StreamFlow's)", fixed_ours, "s", fixed_theirs),
        Figure(
            "run minus fixed cost: ours, s (baseline: StreamFlow's)",
            ours - fixed_ours,
            "s",
            theirs - fixed_theirs,
        ),
        Figure("time copying (from the run's log): StreamFlow's manager, s", copying_theirs, "s"),
        Figure("time copying: ours, s (baseline: StreamFlow's)", copying_ours, "s", copying_theirs),
        Figure(
            "run minus its time copying: ours, s (baseline: StreamFlow's whole run; the "
            "ratio no data manager can beat)",
            rest_ours,
            "s",
            theirs,
        ),
        Figure(
            "bytes read from ssh-b by ours, MiB (baseline: step 2's outputs, sent to the "
            "local node and to ssh-a)",
            max(reads) / 2**20,
            "MiB",
            (args.size * 2**20 + args.files * 4096) / 2**20,
            "1.00x",
        ),
    ]
    print_table(
        f"StreamFlow workflow, three steps on two SSH hosts (login shell "
        f"{args.login_ms:g} ms; median of {args.rounds}, alternated; every run a fresh "
        "`streamflow run`)",
        figures,
    )
    runs = "; ".join(
        f"{m}: {_seconds(heavy[m])} (fixed cost: {_seconds(fixed[m])})" for m in MANAGERS
    )
    print(f"\nEvery run, s: {runs}")
    copied = "; ".join(f"{m}: {_seconds(copies[m])}" for m in MANAGERS)
    print(f"Time copying in each run, s: {copied}")
    print(f"MiB ours read from ssh-b in each run: {', '.join(f'{r / 2**20:,.0f}' for r in reads)}")


def _seconds(times: list[float]) -> str:
    return ", ".join(f"{t:.1f}" for t in times)


if __name__ == "__main__":
    main()
