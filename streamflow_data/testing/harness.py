"""What the connector conformance suite works with: the harness a connector's test module
provides (:class:`ConnectorHarness`), and the data, trees and recorders the suite's tests
build (:mod:`~streamflow_data.testing.conformance`)."""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from streamflow_data.connectors.base import Connector
from streamflow_data.model import Digest, ExecutionLocation

__all__ = [
    "CHUNK",
    "MTIME_NS",
    "ConnectorHarness",
    "RecordedEvents",
    "digest",
    "make_tree",
    "payload",
    "require",
    "tree_contents",
]

MTIME_NS = 1_600_000_000 * 1_000_000_000
"""A whole-second time: every storage that keeps mtimes keeps this one exactly."""


@dataclass(frozen=True, slots=True)
class ConnectorHarness:
    """What the conformance suite needs to exercise a connector."""

    connector: Connector
    deployment: str
    """The deployment name the connector is bound to in the tests."""
    location: ExecutionLocation
    """A location of that deployment the tests may write to."""
    root: str
    """An existing, empty directory on the location, owned by this test."""

    def path(self, *parts: str) -> str:
        """A path below the test's root."""
        return "/".join((self.root.rstrip("/"), *parts))


def payload(size: int, seed: int = 7) -> bytes:
    """Deterministic, incompressible-looking bytes."""
    return bytes((index * 131 + seed * 17 + (index >> 8)) % 251 for index in range(size))


async def digest(data: bytes) -> Digest:
    """``Digest.of`` off the loop: its first large CRC imports the native package."""
    return await asyncio.to_thread(Digest.of, data)


async def _crc32c(data: bytes) -> int:
    """The CRC32C of ``data``, off the loop."""
    return (await digest(data)).crc32c


CHUNK = 64 * 1024
"""The chunk size the own-route tests cut their files by."""


class RecordedEvents:
    """A recording :class:`~streamflow_data.connectors.localcopy.CopyEvents`."""

    journaled = True

    def __init__(self) -> None:
        self.moves: list[int] = []
        self.held_chunks: dict[int, int] = {}

    def moved(self, size: int, started: float) -> None:
        self.moves.append(size)

    def read(self, size: int, seconds: float) -> None:
        """Statistics: not checked here."""

    def recovered(self, error: Exception) -> None:
        """Statistics: not checked here."""

    def held(self, number: int, crc32c: int) -> None:
        assert number not in self.held_chunks, f"chunk {number} told held twice"
        self.held_chunks[number] = crc32c

    async def check_held(self, data: bytes) -> None:
        """Each chunk told held has the CRC32C of ``data``'s chunk."""
        for number, crc in self.held_chunks.items():
            chunk = data[number * CHUNK : (number + 1) * CHUNK]
            assert chunk and crc == await _crc32c(chunk), f"chunk {number}"


def require(harness: ConnectorHarness, capability: str) -> None:
    """Skip the test, naming ``capability``, unless the connector declares it."""
    if not getattr(harness.connector.capabilities, capability):
        pytest.skip(f"{type(harness.connector).__name__} does not declare {capability}")


def make_tree(root: Path) -> None:
    """A small tree of this machine below ``root``: an empty directory, a 5 MB file, a
    small and an empty one (blocking: run it in a thread)."""
    (root / "sub" / "empty").mkdir(parents=True)
    (root / "sub" / "blob").write_bytes(payload(5_000_000))
    (root / "small").write_bytes(b"small")
    (root / "zero").write_bytes(b"")


def tree_contents(root: Path) -> dict[str, bytes | None]:
    """Every path below ``root`` with its bytes (None for directories)."""
    contents: dict[str, bytes | None] = {}
    for directory, subdirectories, files in os.walk(root):
        relative = Path(directory).relative_to(root)
        contents.update({str(relative / name): None for name in subdirectories})
        contents.update(
            {str(relative / name): (Path(directory) / name).read_bytes() for name in files}
        )
    return contents
