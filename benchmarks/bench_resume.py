"""What a rerun moves after ``kill -9``, on the local disk and over SSH.

A 256 MiB copy is killed (its whole process group, as a batch scheduler ends a job) at a
random point between 10% and 90% of its progress, and run again with the same catalog;
the figure is the bytes the rerun moved over the bytes missing at the destination after
the kill (counted by 4 MiB blocks equal to the source's), the median of ``--rounds``
kills. Local: the source is read slowly (50 ms per block), so that the kill lands mid
copy. SSH: the file goes to an sshd started on 127.0.0.1 (as the tests do), through the
OpenSSH master at full speed.

Run: ``python -m benchmarks.bench_resume [--rounds N]`` (``nox -s bench`` runs it; it
needs root to create the SSH login user, as the tests do).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
import tempfile
from pathlib import Path
from statistics import median

from benchmarks.common import Figure, print_table
from benchmarks.resume_child import Target, kill_halfway_and_rerun
from tests.ssh.sshd import client_key, known_hosts, login_user, owned_directory, start_server

MiB = 1 << 20
SIZE = 256 * MiB


def _ratios(scratch: Path, src: Path, target: Target | None, rounds: int) -> list[float]:
    """moved / missing of each kill, at random points (again when a kill came too late
    to leave anything missing: at most ``2 * rounds`` kills)."""
    ratios: list[float] = []
    for number in range(2 * rounds):
        if len(ratios) == rounds:
            break
        run = owned_directory(scratch / f"{'ssh' if target else 'local'}-{number}")
        fraction = random.uniform(0.1, 0.9)
        result = kill_halfway_and_rerun(
            str(run / "catalog.sqlite"),
            str(src),
            str(run / "copy.bin"),
            delay=0.0 if target else 0.05,
            fraction=fraction,
            target=target,
        )
        shutil.rmtree(run)
        if result.missing:
            ratios.append(result.moved / result.missing)
            print(f"killed at {fraction:.0%}: moved/missing {ratios[-1]:.3f}", file=sys.stderr)
    return ratios


def run(rounds: int) -> list[Figure]:
    base = Path(tempfile.mkdtemp(prefix="sfd-bench-resume-"))
    base.chmod(0o755)
    server = start_server("host-a", base / "host-a", client_key(base))
    try:
        known_hosts([server], base / "known_hosts")
        options = {
            "nodes": [{"hostname": "127.0.0.1", "port": server.port, "name": "host-a"}],
            "username": login_user(),
            "client_keys": [str(base / "client_key")],
            "known_hosts": str(base / "known_hosts"),
        }
        scratch = owned_directory(base / "scratch")
        src = base / "src.bin"
        with src.open("wb") as file:
            for _ in range(SIZE // (64 * MiB)):
                file.write(os.urandom(64 * MiB))
        local = _ratios(scratch, src, None, rounds)
        ssh = _ratios(scratch, src, Target("ssh", json.dumps(options)), rounds)
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)
    return [
        Figure("local: bytes moved / bytes missing (x1000)", median(local) * 1000, "", None,
               "<= 1,100"),
        Figure("SSH upload: bytes moved / bytes missing (x1000)", median(ssh) * 1000, "", None,
               "<= 1,100"),
    ]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    args, _ = parser.parse_known_args()
    print_table(f"Resume after kill -9 (256 MiB, median of {args.rounds})", run(args.rounds))


if __name__ == "__main__":
    main()
