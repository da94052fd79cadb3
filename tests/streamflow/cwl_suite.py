"""The CWL v1.2 conformance tests with StreamFlow, on its own data manager and on ours.

``python -m tests.streamflow.cwl_suite`` (``nox -s cwl``) runs ``cwltest`` with StreamFlow's
``cwl-runner`` for each data manager and each placement (every step on the local node; every
step on an SSH deployment, a real sshd on 127.0.0.1 started here), prints the pass counts
side by side and every test whose outcome differs, and exits 1 if ours fails a test that
StreamFlow's own manager passes. DockerRequirement is mapped to no container.

The suite is read from ``$CWL_V12_TESTS`` or ``../shared/cwl-v1.2`` beside the project, and
copied to a temporary directory first (runners write next to their inputs).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ElementTree
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from tests.ssh.sshd import SSHServer, client_key, owned_directory, start_server
from tests.streamflow.hosts import ssh_config

MANAGERS = ("default", "streamflow-data")
PLACEMENTS = ("local", "ssh")
Outcomes = dict[str, str]
"""Test name to ``passed``, ``failed`` or ``skipped``."""
Results = dict[tuple[str, str], Outcomes]
"""(placement, data manager) to its outcomes."""


def suite_directory() -> Path | None:
    """Where the conformance tests are, if they are here."""
    configured = os.environ.get("CWL_V12_TESTS")
    candidates = [Path(configured)] if configured else []
    candidates.append(Path(__file__).resolve().parents[3] / "shared" / "cwl-v1.2")
    return next((c for c in candidates if (c / "conformance_tests.yaml").is_file()), None)


def _streamflow_file(manager: str, placement: str, work: Path, server: SSHServer | None) -> str:
    """The ``--streamflow-file`` of one configuration (JSON, which YAML reads)."""
    workflow: dict[str, object] = {
        "type": "cwl",
        "config": {"docker": [{"step": "/", "deployment": {"type": "none", "config": {}}}]},
    }
    config: dict[str, object] = {"version": "v1.0", "workflows": {"conformance": workflow}}
    if placement == "ssh":
        assert server is not None
        remote = owned_directory(Path(tempfile.mkdtemp(dir=work, prefix="remote-")) / "w")
        remote.parent.chmod(0o755)
        workflow["bindings"] = [
            {"step": "/", "target": {"deployment": "ssh", "workdir": str(remote)}}
        ]
        config["deployments"] = {"ssh": {"type": "ssh", "config": ssh_config(server)}}
    if manager != "default":
        config["dataManager"] = {"type": manager, "config": {}}
    return json.dumps(config)


def _runner(manager: str, placement: str, work: Path, server: SSHServer | None) -> Path:
    """A ``cwl-runner`` wrapper for cwltest's ``--tool``."""
    directory = work / f"{manager}-{placement}"
    directory.mkdir()
    (directory / "streamflow.yml").write_text(_streamflow_file(manager, placement, work, server))
    runner = directory / "runner.sh"
    cwl_runner = Path(sys.executable).with_name("cwl-runner")
    runner.write_text(
        f'#!/bin/sh\nexec "{cwl_runner}" --quiet '
        f'--streamflow-file "{directory / "streamflow.yml"}" "$@"\n'
    )
    runner.chmod(0o755)
    return runner


def _outcomes(junit: Path) -> Outcomes:
    found: Outcomes = {}
    for case in ElementTree.parse(junit).getroot().iter("testcase"):
        name = case.get("name") or "?"
        if case.find("failure") is not None or case.find("error") is not None:
            found[name] = "failed"
        elif case.find("skipped") is not None:
            found[name] = "skipped"
        else:
            found[name] = "passed"
    return found


def run_cwltest(runner: Path, suite: Path, selection: Sequence[str], jobs: int) -> Outcomes:
    """One cwltest run; the outcome of each test. Its temporary files (each test's
    output directory, StreamFlow's own) go beside the runner, removed with it."""
    junit = runner.with_name("junit.xml")
    scratch = runner.with_name("tmp")
    scratch.mkdir(exist_ok=True)
    command = [
        str(Path(sys.executable).with_name("cwltest")),
        "--test", str(suite / "conformance_tests.yaml"),
        "--tool", str(runner),
        "-j", str(jobs),
        "--timeout", "180",
        "--junit-xml", str(junit),
        *selection,
    ]  # fmt: skip
    environment = {**os.environ, "TMPDIR": str(scratch)}
    subprocess.run(command, cwd=suite, env=environment, capture_output=True, check=False)
    return _outcomes(junit)


@contextmanager
def ssh_host(work: Path) -> Iterator[SSHServer]:
    """An sshd on 127.0.0.1 for the SSH placement."""
    base = Path(tempfile.mkdtemp(dir=work, prefix="ssh-"))
    base.chmod(0o755)
    server = start_server("cwl-host", base / "host", client_key(base))
    try:
        yield server
    finally:
        server.stop()


def compare(results: Results) -> tuple[str, bool]:
    """The table of pass counts and differing tests, and whether ours passed at least
    every test StreamFlow's own manager passed."""
    lines = [
        "| placement | data manager | passed | failed | skipped |",
        "| --- | --- | --- | --- | --- |",
    ]
    good = True
    for (placement, manager), outcomes in results.items():
        counts = [
            sum(1 for o in outcomes.values() if o == kind)
            for kind in ("passed", "failed", "skipped")
        ]
        lines.append(f"| {placement} | {manager} | {counts[0]} | {counts[1]} | {counts[2]} |")
    for placement in dict.fromkeys(p for p, _ in results):
        theirs, ours = results[(placement, MANAGERS[0])], results[(placement, MANAGERS[1])]
        for name in sorted(set(theirs) | set(ours)):
            if theirs.get(name) != ours.get(name):
                lines.append(
                    f"{placement}: {name}: StreamFlow's {theirs.get(name)}, ours {ours.get(name)}"
                )
                good = good and not (theirs.get(name) == "passed" and ours.get(name) != "passed")
    return "\n".join(lines), good


def run(source: Path, selection: Sequence[str], placements: Sequence[str], jobs: int) -> Results:
    """Every configuration's outcomes, on a copy of the suite at ``source``."""
    with tempfile.TemporaryDirectory(prefix="sfd-cwl-") as scratch:
        work = Path(scratch)
        work.chmod(0o755)
        suite = work / "suite"
        shutil.copytree(source, suite)
        results: Results = {}
        with ssh_host(work) as server:
            for placement in placements:
                for manager in MANAGERS:
                    runner = _runner(manager, placement, work, server)
                    results[(placement, manager)] = run_cwltest(runner, suite, selection, jobs)
    return results


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tags", help="only the tests with these tags (comma-separated)")
    parser.add_argument("-n", dest="numbers", help="only these tests (cwltest's -n: 1,3-6)")
    parser.add_argument("--placements", default=",".join(PLACEMENTS))
    parser.add_argument("-j", "--jobs", type=int, default=2)
    args = parser.parse_args(argv)
    source = suite_directory()
    if source is None:
        print("the CWL v1.2 conformance tests are not here: set CWL_V12_TESTS", file=sys.stderr)
        return 2
    selection = [
        *(["--tags", args.tags] if args.tags else []),
        *(["-n", args.numbers] if args.numbers else []),
    ]
    results = run(source, selection, args.placements.split(","), args.jobs)
    table, good = compare(results)
    print(table)
    return 0 if good else 1


if __name__ == "__main__":
    sys.exit(main())
