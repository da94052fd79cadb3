"""The configuration file: one TOML document describing a data manager.

It is found, in order, at the path given (``--config``), at ``$STREAMFLOW_DATA_CONFIG``,
or as ``streamflow-data.toml`` in the working directory; without any, the embedded default
applies: the local connector and a catalog under the user's state directory.

.. code-block:: toml

    [catalog]                 # CatalogSettings
    path = "/var/lib/workflow/catalog.sqlite"

    [cache]                   # CacheSettings (no cache budget when absent)
    budget = 10_000_000_000

    [transfer]                # TransferSettings
    block_size = 8388608

    [service]                 # ServiceSettings: streamflow-data serve, and its clients
    url = "unix:///run/user/1000/streamflow-data.sock"

    [deployments.hpc]         # a deployment: "type" names the connector,
    type = "ssh"              # every other key is one of its options
    nodes = [{ hostname = "login.example.org", username = "me" }]

A string value ``"${NAME}"`` is replaced by the environment variable ``NAME``, so secrets
need not be written in the file. Every mistake is reported as a
:class:`~streamflow_data.errors.ConfigurationError` naming the file, the key and what was
expected there.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from streamflow_data.catalog.database import is_postgres
from streamflow_data.config import (
    CacheSettings,
    CatalogSettings,
    ServiceSettings,
    TransferSettings,
)
from streamflow_data.connectors.base import Connector
from streamflow_data.connectors.registry import connector_class
from streamflow_data.errors import ConfigurationError, ConnectorNotFoundError
from streamflow_data.manager import LOCAL_DEPLOYMENT, DefaultDataManager
from streamflow_data.transfer.events import TransferListener
from streamflow_data.validation import (
    Settings,
    check,
    describe,
    mapping_problems,
    redacted,
    unknown_keys,
)

__all__ = [
    "CONFIG_ENVIRONMENT",
    "CONFIG_FILE_NAME",
    "TOKEN_ENVIRONMENT",
    "Configuration",
    "DeploymentConfig",
    "default_catalog",
    "find_configuration",
    "load_configuration",
    "read_token",
]

CONFIG_FILE_NAME = "streamflow-data.toml"
"""The file looked for in the working directory."""
CONFIG_ENVIRONMENT = "STREAMFLOW_DATA_CONFIG"
"""The environment variable naming the configuration file."""

TOKEN_ENVIRONMENT = "STREAMFLOW_DATA_TOKEN"
"""The environment variable holding the service's bearer token, for it and its clients."""

_ENV_REFERENCE = re.compile(r"^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$")
_DEPLOYMENT_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")


def default_catalog() -> str:
    """``$STREAMFLOW_DATA_CATALOG``, else ``streamflow-data/catalog.sqlite`` under
    ``$XDG_STATE_HOME`` (``~/.local/state`` when unset)."""
    configured = os.environ.get("STREAMFLOW_DATA_CATALOG")
    if configured:
        return configured
    state = os.environ.get("XDG_STATE_HOME") or os.path.expanduser("~/.local/state")
    return os.path.join(state, "streamflow-data", "catalog.sqlite")


@dataclass(frozen=True, slots=True)
class DeploymentConfig:
    """One ``[deployments.NAME]`` table: a connector type and its validated options."""

    name: str
    kind: str
    """The connector type (the table's ``type`` key)."""
    options: Mapping[str, Any]
    connector: type[Connector]
    """The connector class registered as ``kind``."""

    def __repr__(self) -> str:
        # Options may hold credentials: their values are masked (validation.redacted).
        return (
            f"DeploymentConfig(name={self.name!r}, kind={self.kind!r}, "
            f"options={redacted(self.options)!r}, connector={self.connector!r})"
        )


_TABLES: dict[str, type[Settings]] = {
    "catalog": CatalogSettings,
    "cache": CacheSettings,
    "transfer": TransferSettings,
    "service": ServiceSettings,
}
"""The top-level tables beside ``deployments``, and the settings each holds."""


@dataclass(frozen=True, slots=True)
class Configuration:
    """A validated configuration: what :meth:`create_manager` builds a data manager from."""

    source: str | None
    """The file it was read from; None for the embedded default."""
    catalog: CatalogSettings
    transfer: TransferSettings = field(default_factory=TransferSettings)
    cache: CacheSettings | None = None
    deployments: Mapping[str, DeploymentConfig] = field(default_factory=dict)
    service: ServiceSettings = field(default_factory=ServiceSettings)

    def create_manager(
        self, *, listeners: Sequence[TransferListener] = (), **kwargs: Any
    ) -> DefaultDataManager:
        """A data manager with this configuration's connectors, catalog, cache and tuning
        (not yet opened: use ``async with``). Keyword arguments go to
        :class:`DefaultDataManager` (``shutdown``, ``policy``)."""
        connectors = {
            name: deployment.connector.from_options(deployment.options)
            for name, deployment in self.deployments.items()
        }
        return DefaultDataManager(
            connectors,
            settings=self.transfer,
            listeners=listeners,
            catalog=self.catalog,
            cache=self.cache,
            **kwargs,
        )


def find_configuration(path: str | None = None) -> str | None:
    """The configuration file to use: ``path``, ``$STREAMFLOW_DATA_CONFIG``, or
    ``streamflow-data.toml`` in the working directory if it exists; None for the default."""
    if path:
        return path
    configured = os.environ.get(CONFIG_ENVIRONMENT)
    if configured:
        return configured
    return CONFIG_FILE_NAME if os.path.isfile(CONFIG_FILE_NAME) else None


def load_configuration(path: str | None = None) -> Configuration:
    """Read and validate the configuration (see :func:`find_configuration`).

    Reads the file with blocking calls: call it at start-up or in a thread. Raises
    :class:`ConfigurationError` for a missing or unreadable file, invalid TOML, an unknown
    key, a value of the wrong type, an unset environment variable, an unknown connector
    type or invalid connector options; the message names the file and the key.
    """
    source = find_configuration(path)
    if source is None:
        return Configuration(None, CatalogSettings(path=default_catalog()))
    import tomllib  # only when there is a file: the default start-up does without it

    try:
        with open(source, "rb") as file:
            document = tomllib.load(file)
    except FileNotFoundError:
        raise ConfigurationError(f"{source}: configuration file not found") from None
    except OSError as exc:
        raise ConfigurationError(f"{source}: cannot read ({exc.strerror})") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError(f"{source}: not valid TOML: {exc}") from exc
    return _validate(source, _substitute(source, document, ()))


def read_token(token_file: str | None, configured: str | None = None) -> str | None:
    """The service's bearer token: the first line of ``token_file`` (``--token-file``),
    else ``$STREAMFLOW_DATA_TOKEN``, else the first line of ``configured`` (``[service]
    token_file``), else None. Blocking: call it at start-up or in a thread."""
    if token_file is None:
        token = os.environ.get(TOKEN_ENVIRONMENT)
        if token or configured is None:
            return token or None
        token_file = configured
    try:
        with open(token_file, encoding="utf-8") as file:
            token = file.readline().strip()
    except OSError as exc:
        raise ConfigurationError(f"{token_file}: cannot read the token ({exc.strerror})") from exc
    if not token:
        raise ConfigurationError(f"{token_file}: the token file is empty")
    return token


def _substitute(source: str, value: Any, key: tuple[str, ...]) -> Any:
    """``value`` with every ``"${NAME}"`` string replaced by that environment variable."""
    if isinstance(value, dict):
        return {name: _substitute(source, item, (*key, name)) for name, item in value.items()}
    if isinstance(value, list):
        return [_substitute(source, item, (*key, str(i))) for i, item in enumerate(value)]
    if isinstance(value, str) and (reference := _ENV_REFERENCE.match(value)):
        found = os.environ.get(reference.group(1))
        if found is None:
            raise ConfigurationError(
                f"{source}: {'.'.join(key)}: environment variable {reference.group(1)} is not set"
            )
        return found
    return value


def _validate(source: str, document: dict[str, Any]) -> Configuration:
    problems = unknown_keys(document, {*_TABLES, "deployments"}, ())
    tables: dict[str, Any] = {}
    for key, cls in _TABLES.items():
        if key in document:
            tables[key], wrong = check(cls, document[key], (key,))
            problems += wrong
    deployments = document.get("deployments", {})
    problems += mapping_problems(deployments, ("deployments",)) or [
        problem
        for name, table in deployments.items()
        for problem in mapping_problems(table, ("deployments", name))
    ]
    if problems:
        raise ConfigurationError(f"{source}: {describe(problems)}")
    catalog = tables.get("catalog") or CatalogSettings(path=default_catalog())
    if catalog.path != ":memory:" and not is_postgres(catalog.path):
        catalog = catalog.replace(path=_beside(source, catalog.path))
    service = tables.get("service") or ServiceSettings()
    if service.token_file is not None:
        service = service.replace(token_file=_beside(source, service.token_file))
    return Configuration(
        source,
        catalog,
        tables.get("transfer") or TransferSettings(),
        tables.get("cache"),
        {name: _deployment(source, name, table) for name, table in deployments.items()},
        service,
    )


def _beside(source: str, path: str) -> str:
    """``path`` from the file ``source``: relative to its directory, not the caller's."""
    base = os.path.dirname(os.path.abspath(source))
    return os.path.normpath(os.path.join(base, os.path.expanduser(path)))


def _deployment(source: str, name: str, table: Mapping[str, Any]) -> DeploymentConfig:
    where = f"{source}: deployments.{name}"
    if not _DEPLOYMENT_NAME.match(name):
        raise ConfigurationError(
            f"{where}: a deployment name may hold letters, digits, '_', '.' and '-' only"
        )
    options = dict(table)
    kind = options.pop("type", None)
    if not isinstance(kind, str):
        raise ConfigurationError(f"{where}.type: expected the connector type, a string")
    if name == LOCAL_DEPLOYMENT and kind != "local":
        raise ConfigurationError(f"{where}.type: the 'local' deployment is the local node")
    try:
        cls = connector_class(kind)
        cls.from_options(options)  # validates the options; connectors connect lazily
    except ConnectorNotFoundError as exc:
        raise ConfigurationError(f"{where}.type: {exc}") from exc
    except ConfigurationError as exc:
        raise ConfigurationError(f"{where}: {exc}") from exc
    return DeploymentConfig(name, kind, options, cls)
