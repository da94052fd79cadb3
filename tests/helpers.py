"""Test helpers: source trees, tree snapshots, and "hosts" simulated on this machine."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from streamflow_data import ExecutionLocation
from tests.wrappers import WrappingConnector

MTIME = 1_500_000_000_123_456_789
TREE_BYTES = 3_000_000 + 5 + 100 + 10
"""Bytes in the files of :func:`make_tree`."""


def snapshot(root: Path) -> dict[str, tuple[str, int, int, bytes | str | None]]:
    """Kind, mode, mtime and content (or link target) of every path below ``root``."""
    result: dict[str, tuple[str, int, int, bytes | str | None]] = {}
    for directory, subdirectories, files in os.walk(root):
        for name in subdirectories + files:
            path = Path(directory) / name
            info = path.lstat()
            key = str(path.relative_to(root))
            if stat.S_ISLNK(info.st_mode):
                result[key] = ("link", 0, 0, os.readlink(path))
            elif stat.S_ISDIR(info.st_mode):
                result[key] = ("dir", stat.S_IMODE(info.st_mode), info.st_mtime_ns, None)
            else:
                content = path.read_bytes()
                result[key] = ("file", stat.S_IMODE(info.st_mode), info.st_mtime_ns, content)
    return result


def make_tree(root: Path) -> None:
    (root / "sub" / "deeper").mkdir(parents=True)
    (root / "empty-dir").mkdir()
    (root / "empty-file").write_bytes(b"")
    (root / "small.txt").write_text("hello")
    (root / "sub" / "big.bin").write_bytes(os.urandom(3_000_000))
    (root / "sub" / "deeper" / "x").write_text("x" * 100)
    (root / "sub" / "script.sh").write_text("#!/bin/sh\n")
    os.chmod(root / "sub" / "script.sh", 0o750)
    os.chmod(root / "sub" / "deeper", 0o700)
    os.symlink("small.txt", root / "rel-link")
    os.symlink("/nonexistent/target", root / "sub" / "dangling")
    for path in [*root.rglob("*"), root]:
        if not path.is_symlink():
            os.utime(path, ns=(MTIME, MTIME))


class Hosts:
    """Separate "hosts" on this machine: each a wrapping connector rooted in its own directory."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.connectors: dict[str, WrappingConnector] = {}

    def add(
        self, name: str, kind: type[WrappingConnector] = WrappingConnector, **faults: object
    ) -> ExecutionLocation:
        (self.base / name).mkdir(parents=True)
        self.connectors[name] = kind(str(self.base / name), **faults)  # type: ignore[arg-type]
        return ExecutionLocation(name, "localhost", local=True)

    def path(self, name: str, path: str) -> Path:
        return self.base / name / path.lstrip("/")
