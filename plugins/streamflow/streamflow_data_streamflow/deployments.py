"""Which of this project's connectors serves each StreamFlow deployment, and its locations.

- ``local`` deployments (and every location StreamFlow calls local): the local connector;
- ``ssh`` deployments: the SSH plugin, configured from the deployment (nodes with ports,
  username, key and passphrase file, host-key checking, sessions, timeouts, retries);
- every other deployment, and ``ssh`` ones using what the plugin does not (a password,
  a tunnel, a data-transfer host, per-node keys): the shell layer over the deployment's
  own connector (:mod:`~streamflow_data_streamflow.transport`), once a probe found the
  tools it needs on the location; where it did not, StreamFlow's own copy methods.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from streamflow_data_ssh import NodeOptions, SSHConnector, SSHOptions

from streamflow_data import (
    ConnectorError,
    DefaultDataManager,
    ExecutionLocation,
    LocalConnector,
    LocationUnreachableError,
    UnknownDeploymentError,
)
from streamflow_data.sdk import ConfigurationError
from streamflow_data_streamflow.transport import CommandsConnector

__all__ = ["Deployments", "ssh_options"]

logger = logging.getLogger("streamflow.streamflow_data")

_PROBE = "for t in dd find tar base64 mktemp; do command -v $t >/dev/null || echo $t; done"
"""Prints the tools the shell layer needs that the location lacks."""

_SSH_KEYS = frozenset(
    {
        "nodes",
        "username",
        "checkHostKey",
        "connectTimeout",
        "maxConcurrentSessions",
        "maxConnections",
        "retries",
        "retryDelay",
        "sshKey",
        "sshKeyPassphraseFile",
        # What only StreamFlow's own use of the deployment needs:
        "file",
        "services",
        "sharedPaths",
        "transferBufferSize",
    }
)


def _name(hostname: str) -> str:
    """Our location name for a StreamFlow one (a node's ``host[:port]``): no ``:``, ``/``
    or blanks, which cannot be written in ``DEPLOYMENT/LOCATION:PATH``."""
    return "".join("_" if c in ":/" or c.isspace() else c for c in hostname)


def ssh_options(config: Mapping[str, Any], config_dir: str) -> SSHOptions | str:
    """The SSH plugin's options for a StreamFlow ``ssh`` deployment's ``config``, or why
    the plugin cannot serve it. Relative files are found from ``config_dir``, as
    StreamFlow finds them."""
    unknown = sorted(key for key, value in config.items() if key not in _SSH_KEYS and value)
    if unknown:
        return f"the SSH plugin does not do {', '.join(unknown)}"
    nodes = []
    for node in config.get("nodes", []):
        fields = {"hostname": node} if isinstance(node, str) else dict(node)
        extra = sorted(set(fields) - {"hostname", "username"})
        if extra:
            return f"node {fields.get('hostname')!r} has options of its own ({', '.join(extra)})"
        hostname = str(fields["hostname"])
        parsed = NodeOptions.model_validate(hostname).model_dump()
        parsed.update(name=_name(hostname), username=fields.get("username"))
        nodes.append(parsed)

    def found(key: str) -> str | None:
        value = config.get(key)
        return None if value is None else os.path.join(config_dir, str(value))

    key = found("sshKey")
    options: dict[str, object] = {
        "nodes": nodes,
        "username": config.get("username"),
        "client_keys": None if key is None else [key],
        "passphrase_file": found("sshKeyPassphraseFile"),
        "check_host_keys": config.get("checkHostKey", True),
        "connect_timeout": config.get("connectTimeout", 30),
        "max_sessions": min(64, max(1, int(config.get("maxConcurrentSessions", 10)))),
        "max_connections": min(64, max(1, int(config.get("maxConnections", 1)))),
        "retries": min(20, max(0, int(config.get("retries", 3)))),
        "retry_delay": config.get("retryDelay", 5),
    }
    try:
        return SSHConnector.from_options(options).options
    except ConfigurationError as exc:
        return str(exc)


@dataclass(slots=True)
class _Deployment:
    """How one deployment is served: by ``connector``, or, with a ``fallback`` reason,
    by StreamFlow's own copy methods; without a connector, it is not deployed yet."""

    connector: LocalConnector | SSHConnector | CommandsConnector | None
    fallback: str | None = None
    probed: set[str] | None = None
    """The locations of a :class:`CommandsConnector` whose tools were probed."""


class Deployments:
    """Maps StreamFlow's deployments and locations to this project's connectors and
    locations, making each connector on first use and handing it to ``manager``."""

    def __init__(self, context: Any, manager: DefaultDataManager) -> None:
        self._context = context
        self._manager = manager
        self._deployments: dict[str, _Deployment] = {}
        path = context.config.get("path") if isinstance(context.config, Mapping) else None
        self._config_dir = os.path.dirname(str(path)) if path else os.getcwd()

    def _deployment(self, name: str, local: bool = False) -> _Deployment:
        """How the deployment ``name`` is served (``local``: StreamFlow calls its locations
        local)."""
        deployment = self._deployments.get(name)
        if deployment is None:
            deployment = self._serve(name, local)
            if deployment.connector is None:  # not deployed yet: ask again next time
                return deployment
            self._deployments[name] = deployment
            self._manager.add_connector(name, deployment.connector)
        return deployment

    def known(self, sf_location: Any) -> ExecutionLocation | None:
        """Our location for ``sf_location`` if its deployment has been served already."""
        if sf_location.deployment not in self._deployments:
            return None
        return self.location(sf_location)

    def _config(self, name: str) -> Any:
        """StreamFlow's configuration of the deployment ``name`` (None if it has none)."""
        return getattr(self._context.deployment_manager, "config_map", {}).get(name)

    def _serve(self, name: str, local: bool) -> _Deployment:
        config = self._config(name)
        kind = getattr(config, "type", None)
        if local or kind == "local":
            return _Deployment(LocalConnector())
        sf_connector = self._context.deployment_manager.get_connector(name)
        if kind == "ssh":
            options = ssh_options(getattr(config, "config", {}) or {}, self._config_dir)
            if isinstance(options, SSHOptions):
                return _Deployment(SSHConnector(options))
            logger.info("deployment %s: through its StreamFlow connector, as %s", name, options)
        if sf_connector is None:  # not deployed: served once it is
            return _Deployment(None)
        return _Deployment(CommandsConnector(sf_connector), probed=set())

    def location(self, sf_location: Any) -> ExecutionLocation:
        """Our location for StreamFlow's ``sf_location`` (its connector made if need be)."""
        deployment = self._deployment(sf_location.deployment, sf_location.local)
        connector = deployment.connector
        if isinstance(connector, LocalConnector):
            return connector.locations(sf_location.deployment)[0]
        ours = ExecutionLocation(
            sf_location.deployment,
            _name(sf_location.name) if isinstance(connector, SSHConnector) else sf_location.name,
            hostname=sf_location.hostname,
        )
        if isinstance(connector, CommandsConnector):
            connector.add(ours, sf_location)
        return ours

    def ssh_location(self, deployment: str, name: str) -> ExecutionLocation | None:
        """Our location for StreamFlow's location ``name`` of ``deployment`` if the SSH
        plugin serves that deployment, else None: it can be had from the two names,
        before StreamFlow hands over a location object of it."""
        if getattr(self._config(deployment), "type", None) != "ssh":
            return None
        if not isinstance(self._deployment(deployment).connector, SSHConnector):
            return None
        return ExecutionLocation(deployment, _name(name))

    async def driven(self, sf_location: Any) -> bool:
        """Whether this project's engine can move data to and from ``sf_location``; if
        not, the reason is logged (once per deployment) and StreamFlow's copy methods do.
        Raises :class:`UnknownDeploymentError` if StreamFlow has no connector for it."""
        deployment = self._deployment(sf_location.deployment, sf_location.local)
        if deployment.connector is None:
            raise UnknownDeploymentError(sf_location.deployment, list(self._deployments))
        probed = deployment.probed
        if probed is not None and sf_location.name not in probed:
            await self._probe(sf_location)  # raises LocationUnreachableError
            probed.add(sf_location.name)
        return deployment.fallback is None

    async def _probe(self, sf_location: Any) -> None:
        """Fall back for the deployment if the location cannot run the shell layer."""
        connector = self._deployment(sf_location.deployment).connector
        assert isinstance(connector, CommandsConnector)
        location = self.location(sf_location)
        try:
            missing = (await connector.transport(location).check(_PROBE, "/")).split()
        except LocationUnreachableError:
            raise  # not the shell's fault: this transfer fails, the next one probes again
        except ConnectorError as exc:
            self._fall_back(sf_location.deployment, f"its shell failed a probe: {exc}")
            return
        if missing:
            tools = b", ".join(missing).decode(errors="replace")
            self._fall_back(sf_location.deployment, f"it lacks {tools}")

    def _fall_back(self, name: str, reason: str) -> None:
        deployment = self._deployments[name]
        if deployment.fallback is None:
            deployment.fallback = reason
            logger.warning(
                "deployment %s: data moves through StreamFlow's own copy methods, as %s",
                name,
                reason,
            )
