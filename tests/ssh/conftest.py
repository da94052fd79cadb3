"""Fixtures of the SSH connector tests: two real sshd servers for the whole session."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import NamedTuple

import pytest
from streamflow_data_ssh import SSHConnector, SSHOptions

from streamflow_data import DefaultDataManager, ExecutionLocation, TransferSettings
from tests.ssh.sshd import (
    SSHServer,
    login_user,
)

OptionsFactory = Callable[..., SSHOptions]
LOCAL = ExecutionLocation("local", "localhost", local=True)
SMALL_CHUNKS = TransferSettings(chunk_size=1 << 20, block_size=256 << 10, block_count=16)
"""Chunks of 1 MiB: a few MiB make several chunks, in parallel lanes."""


class Directed(NamedTuple):
    """A copy between this machine and a host, one way or the other."""

    blob: Path
    """The file to copy, in the source's directory."""
    target: Path
    """Where it goes, in the destination's directory."""
    source: ExecutionLocation
    destination: ExecutionLocation


def directed(direction: str, here: Path, there: Path, host: ExecutionLocation) -> Directed:
    """An upload (``"up"``, from ``here`` to ``there`` on ``host``) or a download."""
    if direction == "up":
        return Directed(here / "blob", there / "copy", LOCAL, host)
    return Directed(there / "blob", here / "copy", host, LOCAL)


async def round_trip(
    manager: DefaultDataManager,
    host: ExecutionLocation,
    remote_dir: Path,
    tmp_path: Path,
    size: int,
) -> None:
    """Copy ``size`` random bytes to ``host`` and back; the copy back must be identical."""
    blob = tmp_path / "blob"
    await asyncio.to_thread(blob.write_bytes, os.urandom(size))
    manager.register_path(LOCAL, str(blob))
    await manager.transfer_data(LOCAL, str(blob), [host], str(remote_dir / "blob"))
    back = tmp_path / "back"
    await manager.transfer_data(host, str(remote_dir / "blob"), [LOCAL], str(back))
    assert await asyncio.to_thread(back.read_bytes) == await asyncio.to_thread(blob.read_bytes)


@pytest.fixture
def ssh_options(ssh_servers: list[SSHServer]) -> OptionsFactory:
    """Options reaching the test servers (both, unless ``servers`` says otherwise)."""
    base = ssh_servers[0].directory.parent

    def build(servers: list[SSHServer] | None = None, **overrides: object) -> SSHOptions:
        chosen = ssh_servers if servers is None else servers
        fields: dict[str, object] = {
            "nodes": [
                {"hostname": "127.0.0.1", "port": server.port, "name": server.name}
                for server in chosen
            ],
            "username": login_user(),
            "client_keys": [str(base / "client_key")],
            "known_hosts": str(base / "known_hosts"),
            "retry_delay": 0.05,
        }
        fields.update(overrides)
        return SSHOptions.model_validate(fields)

    return build


@pytest.fixture
async def ssh(ssh_options: OptionsFactory) -> AsyncIterator[SSHConnector]:
    connector = SSHConnector(ssh_options())
    yield connector
    await connector.close()


@pytest.fixture
def host_a(ssh: SSHConnector) -> ExecutionLocation:
    return ssh.locations("ssh")[0]


@pytest.fixture
def host_b(ssh: SSHConnector) -> ExecutionLocation:
    return ssh.locations("ssh")[1]
