"""The SSH connector: every node of a deployment is a location reached with asyncssh
(and, for the bytes of big files, OpenSSH's ``ssh``: see :mod:`~streamflow_data_ssh.openssh`).

What it does on a node is :class:`~streamflow_data.shell.ShellConnector`'s; this module
says which node a location is, and each node's :class:`~streamflow_data_ssh.pool.NodePool`
runs the commands.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Mapping, Sequence
from typing import Self

from streamflow_data.sdk import ExecutionLocation, UnknownLocationError, parse_options
from streamflow_data.shell import ShellConnector
from streamflow_data_ssh.options import SSHOptions
from streamflow_data_ssh.pool import NodePool, StreamCounts

__all__ = ["SSHConnector"]


class SSHConnector(ShellConnector):
    """The nodes of an SSH deployment, each one location (see :class:`SSHOptions`)."""

    def __init__(self, options: SSHOptions) -> None:
        super().__init__(verify=options.verify == "sha256", metadata_ttl=options.metadata_ttl)
        self.options = options
        """The validated options this connector runs with."""
        self._pools: dict[str, NodePool] = {}

    @classmethod
    def from_options(cls, options: Mapping[str, object]) -> Self:
        """Build from a mapping of :class:`SSHOptions` fields."""
        return cls(parse_options(SSHOptions, options, "ssh connector"))

    def locations(self, deployment: str) -> Sequence[ExecutionLocation]:
        """One location per node, named by :attr:`NodeOptions.location_name`."""
        return tuple(
            ExecutionLocation(deployment, node.location_name, hostname=node.hostname)
            for node in self.options.nodes
        )

    def transport(self, location: ExecutionLocation) -> NodePool:
        """The node's pool of connections, made on first use."""
        pool = self._pools.get(location.name)
        if pool is None:
            node = next((n for n in self.options.nodes if n.location_name == location.name), None)
            if node is None:
                known = [n.location_name for n in self.options.nodes]
                raise UnknownLocationError(location, known)
            pool = self._pools[location.name] = NodePool(node, self.options, location)
        return pool

    def commands_run(self, location: ExecutionLocation) -> int:
        """Remote commands started on ``location`` so far (each at least one round trip):
        for diagnostics and benchmarks."""
        return self.transport(location).commands_run

    def channels_opened(self, location: ExecutionLocation) -> int:
        """asyncssh channels opened to ``location`` so far: a command runner's channel
        serves many commands. For diagnostics and tests."""
        return self.transport(location).channels_opened

    def streams_opened(self, location: ExecutionLocation) -> StreamCounts:
        """The byte streams of big files carried to and from ``location`` so far, by SSH
        client (see :attr:`SSHOptions.streams`): for diagnostics and benchmarks."""
        return dataclasses.replace(self.transport(location).streams)

    async def close(self) -> None:
        pools, self._pools = list(self._pools.values()), {}
        async with asyncio.TaskGroup() as group:
            for pool in pools:
                group.create_task(pool.close())
