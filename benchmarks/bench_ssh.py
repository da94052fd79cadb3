"""SSH transfers against the OpenSSH tools run beside them, with the same cipher.

Two sshd servers are started on 127.0.0.1 (as the SSH tests do). Figures:

- 1 GiB local -> SSH, against ``ssh host 'cat > dst' < file``;
- 1 GiB SSH -> local, against ``ssh host 'cat src' > dst``;
- 10,000 files of 4 KiB local -> SSH into fresh directories, against
  ``tar c | ssh host tar x``;
- 800 files of 20 KiB local -> SSH with ``checksum = "sha256"``, against the same copy
  with the default CRC32C;
- 1 GiB local -> 2 SSH hosts in one call: wall time against one host and against the
  raw tools' copy that reads the file once (``tee fifo < file | ssh b 'cat > dst'`` with
  ``ssh a 'cat > dst' < fifo`` beside it), that copy against ``ssh cat`` to one host, and
  source bytes read;
- one 4 KiB file local -> SSH with the connection open: ms per ``transfer_data`` call and
  remote round trips (remote commands) per call;
- peak RSS of a process uploading 1 GiB with the default settings.

Each ratio is the median of ``--rounds`` pairs, baseline and ours alternating in order.
Each round deletes the big files it wrote: when they piled up, later rounds wrote slower
(the host's parallel ``dd`` waited on the file system's locks).
Run: ``python -m benchmarks.bench_ssh`` (``nox -s bench`` runs it; it needs root to
create the login user, as the tests do).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from statistics import median

from streamflow_data_ssh import SSHConnector, SSHOptions

from benchmarks.common import Figure, peak_rss_bytes, print_table
from streamflow_data import DefaultDataManager, ExecutionLocation, LocalConnector, TransferSettings
from tests.ssh.sshd import (
    SSHServer,
    client_key,
    known_hosts,
    login_user,
    owned_directory,
    slow_login_user,
    start_server,
)

GiB = 1 << 30
LOCAL = ExecutionLocation("local", "localhost", local=True)
CIPHER = "aes128-gcm@openssh.com"


class Bench:
    def __init__(self, base: Path, servers: list[SSHServer], user: str) -> None:
        self.base = base
        self.servers = servers
        self.user = user
        """Who logs in, ours and the baselines alike (see ``--login-ms``)."""
        self.scratch = base / "scratch"
        self.count = 0

    def everywhere(self, path: Path) -> list[Path]:
        """``path`` in every host's view (see :func:`everywhere`)."""
        return everywhere(self.servers, path)

    def fresh(self) -> Path:
        self.count += 1
        return self.scratch / f"d{self.count}"

    def ssh_argv(self, command: str, server: SSHServer | None = None, *options: str) -> list[str]:
        """``ssh`` running ``command`` on ``server`` (the first by default)."""
        server = server or self.servers[0]
        return [
            "ssh", "-p", str(server.port), "-i", str(self.base / "client_key"),
            "-o", f"UserKnownHostsFile={self.base / 'known_hosts'}", "-o", "Compression=no",
            "-c", CIPHER, *options, f"{self.user}@127.0.0.1", command,
        ]  # fmt: skip

    def ssh(self, command: str, **io: object) -> float:
        started = time.perf_counter()
        subprocess.run(self.ssh_argv(command), check=True, **io)  # type: ignore[call-overload]
        return time.perf_counter() - started

    def manager(
        self, servers: list[SSHServer], settings: TransferSettings | None = None
    ) -> AbstractAsyncContextManager[DefaultDataManager]:
        nodes = [(server.name, server.port) for server in servers]
        return open_manager(self.base, nodes, self.user, settings)


def _options(
    base: Path, nodes: list[tuple[str, int]], user: str, streams: str = "auto"
) -> SSHOptions:
    """Options reaching the benchmark's servers, given as (name, port), as ``user``, with
    the byte streams carried as ``streams`` says."""
    return SSHOptions.model_validate(
        {
            "nodes": [
                {"hostname": "127.0.0.1", "port": port, "name": name} for name, port in nodes
            ],
            "username": user,
            "client_keys": [str(base / "client_key")],
            "known_hosts": str(base / "known_hosts"),
            "streams": streams,
        }
    )


@asynccontextmanager
async def open_manager(
    base: Path,
    nodes: list[tuple[str, int]],
    user: str,
    settings: TransferSettings | None = None,
    streams: str = "auto",
) -> AsyncIterator[DefaultDataManager]:
    connector = SSHConnector(_options(base, nodes, user, streams))
    connectors = {"local": LocalConnector(), "ssh": connector}
    async with DefaultDataManager(connectors, settings=settings) as manager:
        yield manager


async def _ours(transfer: Awaitable[None]) -> float:
    """Seconds of one transfer, after a sync so earlier writeback does not slow it."""
    await asyncio.to_thread(os.sync)
    started = time.perf_counter()
    await transfer
    return time.perf_counter() - started


def remove(*paths: Path) -> None:
    """Delete what a round wrote: gigabytes left behind slowed later rounds' writes."""
    for path in paths:
        path.unlink()


def upload_baseline(bench: Bench, blob: Path, dst: Path) -> float:
    os.sync()
    with blob.open("rb") as source:
        return bench.ssh(f"cat > {dst}", stdin=source)


def download_baseline(bench: Bench, src: Path, dst: Path) -> float:
    os.sync()
    with dst.open("wb") as sink:
        return bench.ssh(f"cat {src}", stdout=sink)


def relay(bench: Bench, src: Path, dst: Path) -> None:
    """``ssh a cat src | ssh b 'cat > dst'``: a file from the first host to the second."""
    with subprocess.Popen(bench.ssh_argv(f"cat {src}"), stdout=subprocess.PIPE) as up:
        to_b = bench.ssh_argv(f"cat > {dst}", bench.servers[1])
        subprocess.run(to_b, stdin=up.stdout, check=True)


def tee_baseline(bench: Bench, blob: Path, dst: Path) -> float:
    """The raw tools' copy of ``blob`` to ``dst`` on both hosts, reading it once: ``tee
    fifo < blob | ssh b 'cat > dst'`` with ``ssh a 'cat > dst' < fifo`` beside it.
    Seconds until both copies are written."""
    a, b = bench.servers
    to_a = shlex.join(bench.ssh_argv(f"cat > {dst}", a))
    to_b = shlex.join(bench.ssh_argv(f"cat > {dst}", b))
    os.sync()
    with tempfile.TemporaryDirectory(dir=bench.base) as directory:
        fifo = Path(directory, "to-a")
        os.mkfifo(fifo)
        # ssh to a is a job the shell waits for: bash does not wait for a process
        # substitution, so the clock stopped, and the copies were compared, while a's
        # copy could still be written. ssh makes its output non-blocking: a's must not
        # be tee's (the pipe to b).
        script = (
            f"set -e -o pipefail; {to_a} < {shlex.quote(str(fifo))} > /dev/null & "
            f"tee {shlex.quote(str(fifo))} < {shlex.quote(str(blob))} | {to_b}; wait $!"
        )
        started = time.perf_counter()
        subprocess.run(["bash", "-c", script], check=True)
        return time.perf_counter() - started


def tar_baseline(bench: Bench, source: Path, dst: Path) -> float:
    os.sync()
    started = time.perf_counter()
    with subprocess.Popen(
        ["tar", "-C", str(source), "-cf", "-", "."], stdout=subprocess.PIPE
    ) as tar:
        bench.ssh(f"mkdir {dst} && tar -C {dst} -xf -", stdin=tar.stdout)
    return time.perf_counter() - started


def download_directory() -> Path:
    """Where small-file downloads land: a fresh directory in memory (``/dev/shm``) where
    there is one, since creating files on this machine's disk costs 40 us at times and
    400-870 us at others, which hid the transfer's own cost; else in the temporary
    directory."""
    parent = "/dev/shm" if os.path.isdir("/dev/shm") else None
    return Path(tempfile.mkdtemp(prefix="sfd-bench-down-", dir=parent))


def untar_baseline(bench: Bench, source: Path, dst: Path) -> float:
    os.sync()
    started = time.perf_counter()
    dst.mkdir()
    with subprocess.Popen(["tar", "-C", str(dst), "-xf", "-"], stdin=subprocess.PIPE) as tar:
        bench.ssh(f"tar -C {source} -cf - .", stdout=tar.stdin)
        assert tar.stdin is not None
        tar.stdin.close()
    return time.perf_counter() - started


async def _pair(
    ours_first: bool, baseline: Awaitable[float], ours: Awaitable[float]
) -> tuple[float, float]:
    """Both timings (baseline, ours), run in the order ``ours_first`` says.

    Alternated rounds: on the benchmark machine, whichever 1 GiB copy came right after
    the other kind was the slower one (two managers of the same settings, one always
    after ``ssh cat`` and one after the other: 0.75x and 1.08x of it).
    """
    if not ours_first:
        baseline_time = await baseline
        return baseline_time, await ours
    ours_time = await ours
    return await baseline, ours_time


async def big_files(bench: Bench, rounds: int, blob: Path) -> list[Figure]:
    ups: list[tuple[float, float]] = []
    downs: list[tuple[float, float]] = []
    tees: list[tuple[float, float]] = []
    read_twice = 0
    async with bench.manager(bench.servers) as manager:
        a, b = manager.locations("ssh")
        manager.register_path(LOCAL, str(blob))
        remote_blob = bench.fresh()
        await manager.transfer_data(LOCAL, str(blob), [a], str(remote_blob))
        for round_number in range(rounds):
            ours_first = round_number % 2 == 1  # alternated (see _pair)
            theirs, mine = bench.fresh(), bench.fresh()
            baseline, ours = await _pair(
                ours_first,
                asyncio.to_thread(upload_baseline, bench, blob, theirs),
                _ours(manager.transfer_data(LOCAL, str(blob), [a], str(mine))),
            )
            ups.append((baseline, ours))
            await asyncio.to_thread(remove, theirs, mine)
            back = bench.base / f"back{len(downs)}"
            baseline, ours = await _pair(
                ours_first,
                asyncio.to_thread(download_baseline, bench, remote_blob, back),
                _ours(manager.transfer_data(a, str(remote_blob), [LOCAL], f"{back}.2")),
            )
            downs.append((baseline, ours))
            await asyncio.to_thread(os.remove, back)
            await asyncio.to_thread(os.remove, f"{back}.2")
            before = manager.statistics.of(LOCAL).bytes_read
            theirs, mine = bench.fresh(), bench.fresh()
            two = manager.transfer_data(LOCAL, str(blob), [a, b], str(mine))
            baseline, ours = await _pair(
                ours_first,
                _removed(asyncio.to_thread(tee_baseline, bench, blob, theirs),
                         *bench.everywhere(theirs)),
                _removed(_ours(two), *bench.everywhere(mine)),
            )  # fmt: skip
            tees.append((baseline, ours))
            read_twice = manager.statistics.of(LOCAL).bytes_read - before
    mib = GiB / 2**20
    one_host, two_hosts = (median(ours for _, ours in pairs) * 1000 for pairs in (ups, tees))
    raw_one, raw_two = (median(raw for raw, _ in pairs) * 1000 for pairs in (ups, tees))
    tee = "tee fifo | ssh b, ssh a < fifo"
    return [
        _ratio("1 GiB local -> SSH, MiB/s (baseline: ssh 'cat > dst')", mib, ups, ">= 0.9x"),
        _ratio("1 GiB SSH -> local, MiB/s (baseline: ssh 'cat src')", mib, downs, ">= 0.9x"),
        Figure("1 GiB local -> 2 hosts, ms (baseline: 1 host)", two_hosts, "ms", one_host,
               "<= 2.2x"),
        time_ratio(f"1 GiB local -> 2 hosts, ms (baseline: {tee}",
                   [ours for _, ours in tees], [raw for raw, _ in tees], ""),
        Figure(f"raw tools, 1 GiB local -> 2 hosts by {tee}, ms (baseline: ssh 'cat > dst' "
               "to 1 host)", raw_two, "ms", raw_one),
        Figure("source MiB read for 2 hosts (baseline: file size)", read_twice / 2**20, "MiB",
               mib, "1.00x"),
    ]  # fmt: skip


LATER = 0.25
"""Seconds between the two calls of :func:`two_calls` (0.24 s in StreamFlow's run of
``bench_streamflow``: the workflow's output, then the next step's input)."""


async def two_calls(bench: Bench, rounds: int, blob: Path) -> list[Figure]:
    """A host's 1 GiB file sent to this node and, by a second call :data:`LATER` seconds
    on, to the other host: ours against ``ssh cat`` and the relay pipe started as far
    apart, alternated; and how much of the host's file ours read."""
    pairs: list[tuple[float, float]] = []
    read: list[int] = []
    async with bench.manager(bench.servers) as manager:
        a, b = manager.locations("ssh")
        manager.register_path(LOCAL, str(blob))
        source = bench.fresh()
        await manager.transfer_data(LOCAL, str(blob), [a], str(source))

        async def ours(here: Path, there: Path) -> float:
            async def later() -> None:
                await asyncio.sleep(LATER)
                await manager.transfer_data(a, str(source), [b], str(there))

            async def both() -> None:
                async with asyncio.TaskGroup() as group:
                    group.create_task(manager.transfer_data(a, str(source), [LOCAL], str(here)))
                    group.create_task(later())

            return await _removed(_ours(both()), here, bench.everywhere(there)[-1])

        async def theirs(here: Path, there: Path) -> float:
            baseline = asyncio.to_thread(_two_calls_baseline, bench, source, here, there)
            return await _removed(baseline, here, bench.everywhere(there)[-1])

        for round_number in range(rounds):
            here = [bench.base / f"fetched{round_number}.{n}" for n in (1, 2)]
            there = [bench.fresh(), bench.fresh()]
            before = manager.statistics.of(a).bytes_read
            pairs.append(
                await _pair(
                    round_number % 2 == 1, theirs(here[0], there[0]), ours(here[1], there[1])
                )
            )
            read.append(manager.statistics.of(a).bytes_read - before)
    name = f"1 GiB SSH -> local, and {LATER} s later -> other host, ms"
    baselines = ", and ssh a cat | ssh b 'cat >'"
    return [
        Figure(f"{name} (baseline: ssh cat{baselines})", median(o for _, o in pairs) * 1000,
               "ms", median(t for t, _ in pairs) * 1000),
        Figure("source MiB read for the two calls (baseline: file size)",
               max(read) / 2**20, "MiB", GiB / 2**20, "1.00x"),
    ]  # fmt: skip


async def _removed(timed: Awaitable[float], *paths: Path) -> float:
    """The seconds ``timed`` gives, once the copies it made at ``paths`` are deleted
    (before the other contender runs: 2 GiB left behind slowed the next copy by half)."""
    seconds = await timed
    await asyncio.to_thread(remove, *paths)
    return seconds


def _two_calls_baseline(bench: Bench, source: Path, here: Path, there: Path) -> float:
    """``ssh a cat`` to a local file and, :data:`LATER` seconds on, ``ssh a cat`` piped
    to ``ssh b 'cat >'``: seconds until both are done."""
    started = time.perf_counter()
    with (
        here.open("wb") as out,
        subprocess.Popen(bench.ssh_argv(f"cat {source}"), stdout=out) as fetch,
    ):
        time.sleep(LATER)
        relay(bench, source, there)
    if fetch.returncode != 0:
        raise subprocess.CalledProcessError(fetch.returncode, fetch.args)
    return time.perf_counter() - started


def time_ratio(name: str, mine: list[float], theirs: list[float], target: str) -> Figure:
    """A time figure: the median of the ratios of time, round by round, with their spread
    (``name`` lacks its closing parenthesis, which follows the spread)."""
    ratios = [ours / baseline for ours, baseline in zip(mine, theirs, strict=True)]
    baseline_ms = median(theirs) * 1000
    spread = f"ratios {min(ratios):.2f}-{max(ratios):.2f}"
    return Figure(f"{name}; {spread})", baseline_ms * median(ratios), "ms", baseline_ms, target)


def _ratio(name: str, amount: float, pairs: list[tuple[float, float]], target: str) -> Figure:
    """A rate figure: ours against the baseline's, the median ratio of the pairs."""
    ratio = median(baseline / ours for baseline, ours in pairs)
    baseline_rate = amount / median(baseline for baseline, _ in pairs)
    unit = "MiB/s" if "MiB" in name else "files/s"
    return Figure(name, baseline_rate * ratio, unit, baseline_rate, target)


async def small_files(bench: Bench, rounds: int) -> list[Figure]:
    """Rounds in alternated order, as for big files. Creating a file on the benchmark
    machine's disk costs about 40 us at times and 400-870 us at others, and which copy
    meets the slow state is chance: the median is over two more rounds than asked.

    The manager copies the tree once before the rounds, as a long-lived program would have
    its connection and its OpenSSH master open (the first copy also starts the master);
    ``ssh`` connects anew for each baseline, as ``tar c | ssh tar x`` does."""
    source = bench.base / "small-source"
    await asyncio.to_thread(small_tree, source)
    pairs = []
    async with bench.manager(bench.servers[:1]) as manager:
        [a] = manager.locations("ssh")
        manager.register_path(LOCAL, str(source))
        await manager.transfer_data(LOCAL, str(source), [a], str(bench.fresh()))
        for round_number in range(rounds + 2):
            pairs.append(
                await _pair(
                    round_number % 2 == 1,
                    asyncio.to_thread(tar_baseline, bench, source, bench.fresh()),
                    _ours(manager.transfer_data(LOCAL, str(source), [a], str(bench.fresh()))),
                )
            )
        remote = bench.fresh()  # the host's copy, for the downloads
        await manager.transfer_data(LOCAL, str(source), [a], str(remote))
        manager.register_path(a, str(remote))
        downloads = []
        for round_number in range(rounds + 2):
            local = download_directory()
            downloads.append(
                await _pair(
                    round_number % 2 == 1,
                    asyncio.to_thread(untar_baseline, bench, remote, local / "tar"),
                    _ours(manager.transfer_data(a, str(remote), [LOCAL], str(local / "ours"))),
                )
            )
            await asyncio.to_thread(shutil.rmtree, local)  # memory, not disk: give it back
    name = (
        f"10,000 x 4 KiB local -> SSH, files/s (baseline: tar c | ssh tar x; "
        f"median of {rounds + 2})"
    )
    down = (
        f"10,000 x 4 KiB SSH -> local, files/s (baseline: ssh tar c | tar x; "
        f"median of {rounds + 2})"
    )
    return [_ratio(name, 10_000, pairs, ">= 1.0x"), _ratio(down, 10_000, downloads, ">= 0.83x")]


async def sha256_small_files(bench: Bench, rounds: int) -> list[Figure]:
    """800 files of 20 KiB (16 MiB) with ``checksum = "sha256"`` against the same copy
    with the default CRC32C: two long-lived managers, each warmed up by one copy, their
    rounds alternated. The SHA-256 run reads every file back from the host."""
    source = bench.base / "sha256-source"
    await asyncio.to_thread(_files, source, 800, 20 << 10)
    hashed_settings = TransferSettings(checksum="sha256")
    one = bench.servers[:1]
    async with bench.manager(one) as plain, bench.manager(one, hashed_settings) as hashed:
        [a] = plain.locations("ssh")
        for manager in (plain, hashed):
            manager.register_path(LOCAL, str(source))
            await manager.transfer_data(LOCAL, str(source), [a], str(bench.fresh()))
        pairs = [
            await _pair(
                round_number % 2 == 1,
                _ours(plain.transfer_data(LOCAL, str(source), [a], str(bench.fresh()))),
                _ours(hashed.transfer_data(LOCAL, str(source), [a], str(bench.fresh()))),
            )
            for round_number in range(rounds)
        ]
    name = "800 x 20 KiB local -> SSH with checksum = sha256, files/s (baseline: crc32c)"
    return [_ratio(name, 800, pairs, ">= 0.67x (sha256 costs <= 1.5x)")]


def _files(source: Path, count: int, size: int) -> None:
    source.mkdir(parents=True)
    for index in range(count):
        (source / f"f{index:04}").write_bytes(os.urandom(size))


def small_tree(source: Path) -> None:
    for directory in range(100):
        (source / f"d{directory:02}").mkdir(parents=True)
        for index in range(100):
            (source / f"d{directory:02}" / f"f{index:03}").write_bytes(os.urandom(4096))


async def one_small_file(bench: Bench) -> list[Figure]:
    small = bench.base / "one-small"
    small.write_bytes(os.urandom(4096))
    async with bench.manager(bench.servers[:1]) as manager:
        [a] = manager.locations("ssh")
        connector = manager.connector(a)
        assert isinstance(connector, SSHConnector)
        manager.register_path(LOCAL, str(small))
        target = bench.fresh()
        await manager.transfer_data(LOCAL, str(small), [a], str(target / "warm-up"))
        calls = 50
        channels = connector.commands_run(a)
        started = time.perf_counter()
        for index in range(calls):
            await manager.transfer_data(LOCAL, str(small), [a], str(target / f"f{index}"))
        elapsed = time.perf_counter() - started
        channels = connector.commands_run(a) - channels
    return [
        Figure("one 4 KiB file local -> SSH, ms per call", elapsed / calls * 1000, "ms", None,
               "< 30 ms"),
        Figure("remote round trips per call", channels / calls, "", None, "minimum"),
    ]  # fmt: skip


def child_upload(base: Path, blob: Path, port: int, user: str) -> None:
    """Upload ``blob`` once with the default settings; print peak RSS (KiB)."""

    async def run() -> None:
        async with open_manager(base, [("host-a", port)], user) as manager:
            [a] = manager.locations("ssh")
            manager.register_path(LOCAL, str(blob))
            await manager.transfer_data(LOCAL, str(blob), [a], str(base / "scratch" / "rss"))

    asyncio.run(run())
    print(peak_rss_bytes() // 1024)


def everywhere(servers: list[SSHServer], path: Path) -> list[Path]:
    """``path`` in this process's view and, where a server has a view of its own of the
    scratch directory, in that one."""
    views = [path]
    for server in servers:
        if server.own_view is not None:
            shared, own = server.own_view
            views.append(own / path.relative_to(shared))
    return views


def two_hosts(base: Path, key: Path, user: str) -> list[SSHServer]:
    """Two hosts on this machine; the second with a scratch directory of its own where
    the system allows it (as root, a mount namespace).

    With one directory for both, the two-host copy's second commit renamed its file over
    the first host's copy, which took 0.34 to 0.44 s: time separate hosts never spend.
    """
    scratch = owned_directory(base / "scratch", user)
    own = owned_directory(base / "scratch-host-b", user)
    first = start_server("host-a", base / "host-a", key)
    try:
        second = start_server("host-b", base / "host-b", key, own_view=(scratch, own))
    except RuntimeError as exc:
        print(f"host-b shares host-a's scratch directory ({exc})", file=sys.stderr)
        shutil.rmtree(base / "host-b")
        second = start_server("host-b", base / "host-b", key)
    return [first, second]


def login_options(parser: argparse.ArgumentParser) -> None:
    """``--login-ms``, the cost of the login user's shell start-up per command."""
    parser.add_argument(
        "--login-ms",
        type=float,
        default=80.0,
        help="milliseconds the login user's shell start-up costs per command, as on a "
        "login node with a module system (0: a plain /bin/sh user)",
    )


def bench_user(login_ms: float) -> str:
    """The user who logs in: one whose shell costs ``login_ms`` per command, or the plain
    test user for 0."""
    return slow_login_user(login_ms / 1000) if login_ms else login_user()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    login_options(parser)
    parser.add_argument("--child-upload", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_upload:
        base, blob, port, user = args.child_upload
        child_upload(Path(base), Path(blob), int(port), user)
        return
    base = Path(tempfile.mkdtemp(prefix="sfd-bench-ssh-"))
    base.chmod(0o755)
    key = client_key(base)
    user = bench_user(args.login_ms)
    servers = two_hosts(base, key, user)
    known_hosts(servers, base / "known_hosts")
    try:
        bench = Bench(base, servers, user)
        blob = base / "blob"
        with blob.open("wb") as out:
            for _ in range(GiB // (64 << 20)):
                out.write(os.urandom(64 << 20))
        figures = asyncio.run(big_files(bench, args.rounds, blob))
        figures += asyncio.run(two_calls(bench, args.rounds, blob))
        figures += asyncio.run(small_files(bench, args.rounds))
        figures += asyncio.run(sha256_small_files(bench, args.rounds))
        figures += asyncio.run(one_small_file(bench))
        child = subprocess.run(
            [sys.executable, "-m", "benchmarks.bench_ssh", "--child-upload", str(base),
             str(blob), str(servers[0].port), user],
            check=True, capture_output=True, text=True,
        )  # fmt: skip
        rss = int(child.stdout.split()[-1]) / 1024
        figures.append(Figure("peak RSS uploading 1 GiB, MiB", rss, "MiB", None, "< 160 MiB"))
        title = f"SSH transfers, warm (cipher {CIPHER}; login shell {args.login_ms:.0f} ms"
        print_table(f"{title}; median of {args.rounds})", figures)
    finally:
        for server in servers:
            server.stop()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
