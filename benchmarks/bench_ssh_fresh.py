"""SSH transfers as a fresh process meets them, beside the OpenSSH tools.

Each trial of ours is a new process that builds the manager, opens the connection to
every host (one ``stat``) and lets the OpenSSH masters start, as a workflow step finds
them, then times one ``transfer_data``. The login user's shell costs ``--login-ms`` per
command (80 ms by default: a ``.bashrc`` that sleeps, as a login node's module system
costs). Contenders, alternated trial by trial, each copy checked:

- 1 GiB local -> SSH: ``ssh host 'cat > dst' < file``;
- 1 GiB SSH -> local: ``ssh host 'cat src' > dst``;
- 10,000 x 4 KiB local -> SSH: ``tar c | ssh host tar x``;
- 10,000 x 4 KiB SSH -> local: ``ssh host tar c | tar x`` (into ``/dev/shm``);
- 1 GiB -> 2 hosts: ``tee fifo < file | ssh b 'cat > dst'`` with ``ssh a 'cat > dst' <
  fifo`` beside it, which reads the file once;
- 1 GiB host -> other host: ``ssh a 'cat src' | ssh b 'cat > dst'``;
- one 4 KiB file: ``ssh 'cat > dst'`` over an open master.

StreamFlow 0.2.0rc3's own data manager and SSH connector, in a fresh process with its
deployments connected, is the third contender; ours with ``streams = "asyncssh"`` (no
OpenSSH master: every byte through asyncssh) the fourth, compared with ours. For the
1 GiB kinds a fifth, asyncssh alone (``cat`` on the hosts over connections opened
before, 1 MiB at a time, nothing checked), shows how close any client of asyncssh can
come to the master. Figures are ratios of time (above 1: ours slower), medians of
``--rounds`` rounds, with their spread; and the remote commands each transfer of ours
ran.
Run: ``python -m benchmarks.bench_ssh_fresh`` (``nox -s bench`` runs it; as root).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import filecmp
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from statistics import median
from typing import cast

import asyncssh
from streamflow_data_ssh import SSHConnector

from benchmarks.bench_ssh import (
    CIPHER,
    LOCAL,
    Bench,
    GiB,
    bench_user,
    download_baseline,
    download_directory,
    login_options,
    open_manager,
    relay,
    remove,
    small_tree,
    tar_baseline,
    tee_baseline,
    time_ratio,
    two_hosts,
    untar_baseline,
    upload_baseline,
)
from benchmarks.common import Figure, print_table
from tests.ssh.sshd import client_key, known_hosts


@dataclass(frozen=True, slots=True)
class Trial:
    """One transfer of ours, run by a fresh process (``--trial``)."""

    base: str
    nodes: list[tuple[str, int]]
    user: str
    source: int | None
    """The host the source is on (an index of ``nodes``), None for this machine."""
    targets: list[int] | None
    """The hosts to copy to, None for this machine."""
    src: str
    dst: str
    contender: str = "ours"
    """``ours``, ``asyncssh`` (ours with ``streams = "asyncssh"``: no OpenSSH master),
    ``streamflow`` (StreamFlow's own data manager and SSH connector) or ``cat`` (a loop
    over asyncssh channels alone)."""


async def _run_trial(trial: Trial) -> tuple[float, int]:
    if trial.contender == "streamflow":
        return await _streamflow_trial(trial)
    if trial.contender == "cat":
        return await _cat_trial(trial)
    return await _our_trial(trial)


async def _our_trial(trial: Trial) -> tuple[float, int]:
    """Seconds of the transfer, and the remote commands it ran."""
    nodes = [(name, port) for name, port in trial.nodes]
    streams = "asyncssh" if trial.contender == "asyncssh" else "auto"
    async with open_manager(Path(trial.base), nodes, trial.user, streams=streams) as manager:
        hosts = manager.locations("ssh")
        connector = manager.connector(hosts[0])
        assert isinstance(connector, SSHConnector)
        source = LOCAL if trial.source is None else hosts[trial.source]
        targets = [LOCAL] if trial.targets is None else [hosts[i] for i in trial.targets]
        manager.register_path(source, trial.src)
        for host in hosts:  # the connection open, as a workflow step finds it
            await connector.stat(host, "/")
        await asyncio.sleep(0.5)  # and the OpenSSH masters started beside it
        before = sum(connector.commands_run(host) for host in hosts)
        started = time.perf_counter()
        await manager.transfer_data(source, trial.src, targets, trial.dst)
        elapsed = time.perf_counter() - started
        return elapsed, sum(connector.commands_run(host) for host in hosts) - before


async def _streamflow_trial(trial: Trial) -> tuple[float, int]:
    """The trial with StreamFlow's ``DefaultDataManager`` (0.2.0rc3): one ``ssh``
    deployment of both hosts, connected before the transfer (StreamFlow needs the
    destinations of one transfer in one deployment). Remote commands are not counted."""
    from streamflow.core.deployment import DeploymentConfig
    from streamflow.core.deployment import ExecutionLocation as Location
    from streamflow.main import build_context

    context = build_context(
        {
            "path": str(Path(trial.base) / "streamflow.yml"),
            "database": {"type": "default", "config": {"connection": ":memory:"}},
            "dataManager": {"type": "default", "config": {}},
        }
    )
    nodes = [f"127.0.0.1:{port}" for _, port in trial.nodes]
    config = {
        "nodes": nodes,
        "username": trial.user,
        "sshKey": str(Path(trial.base) / "client_key"),
        "checkHostKey": False,
    }
    deploy = context.deployment_manager.deploy
    try:
        local = DeploymentConfig(name="__LOCAL__", type="local", config={}, external=True)
        await deploy(local)
        await deploy(DeploymentConfig(name="ssh", type="ssh", config=config, external=False))
        here = Location(name="__LOCAL__", deployment="__LOCAL__", local=True)
        hosts = [Location(name=node, deployment="ssh", hostname=node) for node in nodes]
        connector = context.deployment_manager.get_connector("ssh")
        for host in hosts:  # the connections open
            await connector.run(host, ["true"])
        source = here if trial.source is None else hosts[trial.source]
        targets = [here] if trial.targets is None else [hosts[i] for i in trial.targets]
        manager = context.data_manager
        manager.register_path(source, trial.src, relpath=os.path.basename(trial.src))
        started = time.perf_counter()
        await manager.transfer_data(source, trial.src, targets, trial.dst, writable=True)
        return time.perf_counter() - started, 0
    finally:
        await context.deployment_manager.undeploy_all()
        await context.close()


async def _cat_trial(trial: Trial) -> tuple[float, int]:
    """The trial's file moved by ``cat`` on the hosts through asyncssh channels, 1 MiB at
    a time, every destination written before the next read, nothing checked: what asyncssh
    itself costs, without the engine. The connections are open before the clock starts."""
    base = Path(trial.base)
    connections = [
        await asyncssh.connect(
            "127.0.0.1", port, username=trial.user, client_keys=[str(base / "client_key")],
            known_hosts=str(base / "known_hosts"), encryption_algs=[CIPHER],
        )
        for _, port in trial.nodes
    ]  # fmt: skip
    source = os.open(trial.src, os.O_RDONLY) if trial.source is None else None
    sink = os.open(trial.dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL) if not trial.targets else None
    try:
        started = time.perf_counter()
        reader = None
        if trial.source is not None:
            command = f"cat {shlex.quote(trial.src)}"
            reader = await connections[trial.source].create_process(command, encoding=None)
        writers = [
            await connections[i].create_process(f"cat > {shlex.quote(trial.dst)}", encoding=None)
            for i in trial.targets or []
        ]
        while True:
            if reader is None:
                chunk = await asyncio.to_thread(os.read, cast(int, source), 1 << 20)
            else:
                chunk = await reader.stdout.read(1 << 20)
            if not chunk:
                break
            if sink is not None:
                await asyncio.to_thread(os.write, sink, chunk)
            for writer in writers:
                writer.stdin.write(chunk)
            await asyncio.gather(*(writer.stdin.drain() for writer in writers))
        for writer in writers:
            writer.stdin.write_eof()
        for process in [*writers, *([reader] if reader else [])]:
            await process.wait(check=True)
        return time.perf_counter() - started, len(writers) + (reader is not None)
    finally:
        for fd in (source, sink):
            if fd is not None:
                os.close(fd)
        for connection in connections:
            connection.close()


def _ours(trial: Trial) -> tuple[float, int]:
    """Run ``trial`` in a fresh process, after a sync so that earlier writeback does not
    slow it."""
    os.sync()
    child = subprocess.run(
        [sys.executable, "-m", "benchmarks.bench_ssh_fresh", "--trial",
         json.dumps(asdict(trial))],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    seconds, commands = json.loads(child.stdout.splitlines()[-1])
    return float(seconds), int(commands)


@dataclass(slots=True)
class _Kind:
    """One kind of work: how ours and the raw tools do it, and how a copy is checked."""

    name: str
    baseline: str
    trial: Callable[[Path], Trial]
    """Our trial writing to a fresh path."""
    raw: Callable[[Path], float]
    """The raw tools writing to a fresh path: seconds."""
    outputs: Callable[[Path], list[Path]]
    """Where a copy to a path lands, to be checked and removed."""
    expected: Path
    target: str
    fresh: Callable[[], Path]
    """A path to copy to."""
    streamflow_target: str
    by_cat: bool = False
    """Whether asyncssh alone (a ``cat`` loop: one file) is measured too."""


def _same(expected: Path, copy: Path) -> bool:
    if expected.is_dir():
        compared = filecmp.dircmp(expected, copy)
        return not (compared.left_only or compared.right_only or compared.diff_files) and all(
            _same(expected / name, copy / name) for name in compared.common_dirs
        )
    return filecmp.cmp(expected, copy, shallow=False)


def _remove_all(paths: list[Path]) -> None:
    for path in paths:
        if path.is_dir():
            shutil.rmtree(path)
        else:
            remove(path)


def _kinds(
    bench: Bench, blob: Path, tree: Path, small: Path, master: Path, shm: Path
) -> list[_Kind]:
    """The kinds of work; downloads land in ``shm``, in memory (see bench_ssh)."""
    a = bench.servers[0]
    nodes = [(server.name, server.port) for server in bench.servers]
    scratch = bench.scratch
    remote_blob, remote_tree = scratch / "remote-blob", scratch / "remote-tree"
    shutil.copy(blob, remote_blob)
    shutil.copytree(tree, remote_tree)

    def trial(source: int | None, targets: list[int] | None, src: Path) -> Callable[[Path], Trial]:
        return lambda dst: Trial(
            str(bench.base), nodes, bench.user, source, targets, str(src), str(dst)
        )

    def relayed(dst: Path) -> float:
        started = time.perf_counter()
        relay(bench, remote_blob, dst)
        return time.perf_counter() - started

    def one_file(dst: Path) -> float:
        started = time.perf_counter()
        with small.open("rb") as source:
            argv = bench.ssh_argv(f"cat > {dst}", a, "-S", str(master))
            subprocess.run(argv, stdin=source, check=True)
        return time.perf_counter() - started

    def local(path: Path) -> list[Path]:
        return [path]

    def in_memory() -> Path:
        bench.count += 1
        return shm / f"d{bench.count}"

    return [
        _Kind("1 GiB local -> SSH", "ssh 'cat > dst'", trial(None, [0], blob),
              lambda dst: upload_baseline(bench, blob, dst), local, blob, "<= 1.10x",
              bench.fresh, "<= 0.70x", by_cat=True),
        _Kind("1 GiB SSH -> local", "ssh 'cat src'", trial(0, None, remote_blob),
              lambda dst: download_baseline(bench, remote_blob, dst), local, blob, "<= 1.10x",
              in_memory, "<= 0.80x", by_cat=True),
        _Kind("10,000 x 4 KiB local -> SSH", "tar c | ssh tar x", trial(None, [0], tree),
              lambda dst: tar_baseline(bench, tree, dst), local, tree, "<= 1.20x", bench.fresh,
              "<= 0.50x"),
        _Kind("10,000 x 4 KiB SSH -> local", "ssh tar c | tar x", trial(0, None, remote_tree),
              lambda dst: untar_baseline(bench, remote_tree, dst), local, tree, "<= 1.20x",
              in_memory, "<= 0.70x"),
        _Kind("1 GiB -> 2 hosts", "tee fifo | ssh b, ssh a < fifo", trial(None, [0, 1], blob),
              lambda dst: tee_baseline(bench, blob, dst),
              bench.everywhere, blob, "<= 1.10x", bench.fresh, "<= 0.70x", by_cat=True),
        _Kind("1 GiB host -> other host", "ssh a cat | ssh b 'cat >'",
              trial(0, [1], remote_blob), relayed, lambda dst: bench.everywhere(dst)[1:] or [dst],
              blob, "<= 1.05x", bench.fresh, "<= 0.80x", by_cat=True),
        _Kind("one 4 KiB file", "ssh 'cat >' over an open master", trial(None, [0], small),
              one_file, local, small, "<= 1.0x, 1 command", bench.fresh, "<= 1.0x"),
    ]  # fmt: skip


def _control(bench: Bench, master: Path, *options: str) -> None:
    """Run ``ssh`` with ``options`` on the first host's master socket, no command."""
    argv = bench.ssh_argv("", None, "-S", str(master), *options)
    subprocess.run(argv[:-1], check=False, capture_output=True)


def _measure(bench: Bench, kind: _Kind, rounds: int) -> list[Figure]:
    """``rounds`` rounds of the contenders, which goes first rotating from round to round;
    every copy compared with its source."""
    contenders: list[Callable[[Path], tuple[float, int]]] = [
        lambda path: _ours(kind.trial(path)),
        lambda path: (kind.raw(path), 0),
        lambda path: _ours(dataclasses.replace(kind.trial(path), contender="streamflow")),
        lambda path: _ours(dataclasses.replace(kind.trial(path), contender="asyncssh")),
    ]
    if kind.by_cat:
        contenders.append(
            lambda path: _ours(dataclasses.replace(kind.trial(path), contender="cat"))
        )
    times: list[list[float]] = [[] for _ in contenders]
    commands = []
    for round_number in range(rounds):
        for turn in range(len(contenders)):
            index = (round_number + turn) % len(contenders)
            path = kind.fresh()
            seconds, ran = contenders[index](path)
            outputs = kind.outputs(path)
            if not all(_same(kind.expected, output) for output in outputs):
                raise RuntimeError(f"{kind.name}: {path} differs from {kind.expected}")
            _remove_all(outputs)
            times[index].append(seconds)
            if index == 0:
                commands.append(ran)
    ours, raw, streamflow, asyncssh = times[:4]
    figures = [
        time_ratio(f"{kind.name}, ms (baseline: {kind.baseline}", ours, raw, kind.target),
        time_ratio(f"{kind.name}, ms (baseline: StreamFlow 0.2.0rc3", ours, streamflow,
               kind.streamflow_target),
        time_ratio(f"{kind.name}, streams = asyncssh, ms (baseline: ours", asyncssh, ours,
               "<= 1.5x"),
    ]  # fmt: skip
    if kind.by_cat:
        name = f"{kind.name}, asyncssh alone: a cat loop, ms (baseline: ours"
        figures.append(time_ratio(name, times[4], ours, ""))
    figures.append(Figure(f"{kind.name}: remote commands", median(commands), "", None, ""))
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    login_options(parser)
    parser.add_argument("--trial", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.trial:
        trial = Trial(**json.loads(args.trial))
        print(json.dumps(asyncio.run(_run_trial(trial))))
        return
    base = Path(tempfile.mkdtemp(prefix="sfd-bench-fresh-"))
    base.chmod(0o755)
    user = bench_user(args.login_ms)
    servers = two_hosts(base, client_key(base), user)
    known_hosts(servers, base / "known_hosts")
    master = Path(tempfile.mkdtemp(prefix="sfd-m-")) / "ctl"
    shm = download_directory()
    try:
        bench = Bench(base, servers, user)
        blob, tree, small = base / "blob", base / "tree", base / "small"
        with blob.open("wb") as out:
            for _ in range(GiB // (64 << 20)):
                out.write(os.urandom(64 << 20))
        small_tree(tree)
        small.write_bytes(os.urandom(4096))
        _control(bench, master, "-M", "-N", "-f")  # the baseline's open master
        figures = []
        for kind in _kinds(bench, blob, tree, small, master, shm):
            figures += _measure(bench, kind, args.rounds)
        title = f"SSH transfers, a fresh process each (login shell {args.login_ms:.0f} ms"
        print_table(f"{title}; median of {args.rounds})", figures)
    finally:
        _control(bench, master, "-O", "exit")
        for server in servers:
            server.stop()
        for directory in (base, master.parent, shm):
            shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    main()
