"""``streamflow-data serve`` in processes of their own, for the tests and benchmarks that
need real services (several on one catalog, killed like lost machines)."""

from __future__ import annotations

import contextlib
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from tests.cli.console import SCRIPT

__all__ = ["config_arguments", "serve_processes", "socket_directory"]


@contextlib.contextmanager
def socket_directory() -> Iterator[Path]:
    """A new directory with a short path, for Unix sockets (a socket's path holds 107
    bytes, too few below pytest's ``tmp_path``), removed at the end."""
    directory = Path(tempfile.mkdtemp(prefix="sfd-sock-"))
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@contextlib.contextmanager
def serve_processes(
    arguments: Sequence[Sequence[str]], env: Mapping[str, str] | None = None
) -> Iterator[list[subprocess.Popen[str]]]:
    """One ``streamflow-data ARGUMENTS... serve`` per item, each started once the one
    before says it serves, in a session of its own (``os.killpg`` ends it with its
    ``ssh`` processes, as a lost machine); all stopped with SIGTERM at the end."""
    started: list[subprocess.Popen[str]] = []
    try:
        for words in arguments:
            process = subprocess.Popen(
                [str(SCRIPT), *words, "serve"],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=None if env is None else dict(env),
                start_new_session=True,
            )
            started.append(process)
            assert process.stdout is not None and process.stderr is not None
            if not process.stdout.readline().startswith("serving on "):
                process.wait(timeout=60)
                raise RuntimeError(f"serve did not start: {process.stderr.read()}")
        yield started
    finally:
        for process in started:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in started:
            process.communicate(timeout=60)


def config_arguments(configs: Sequence[Path]) -> list[list[str]]:
    """``--config FILE`` for each configuration file."""
    return [["--config", str(config)] for config in configs]
