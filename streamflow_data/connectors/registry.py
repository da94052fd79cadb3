"""Finding connector types: the built-in local one and plugins registered by entry point.

A plugin distribution declares its connector class in its ``pyproject.toml``::

    [project.entry-points."streamflow_data.connectors"]
    mystore = "mystore_plugin:MyStoreConnector"

after which ``create_connector("mystore", options)`` builds it. The core never imports a
plugin by name, and reads the entry points only when a plugin type is asked for
(``importlib.metadata`` alone costs about 0.07 s of start-up here).
"""

from __future__ import annotations

from collections.abc import Mapping

from streamflow_data.connectors.base import Connector
from streamflow_data.connectors.local import LocalConnector
from streamflow_data.errors import ConfigurationError, ConnectorNotFoundError

__all__ = ["ENTRY_POINT_GROUP", "connector_class", "connector_types", "create_connector"]

ENTRY_POINT_GROUP = "streamflow_data.connectors"
"""The entry-point group connector plugins register under."""

_BUILTIN: dict[str, type[Connector]] = {"local": LocalConnector}


def connector_types() -> list[str]:
    """The names of every connector type available: built in and installed plugins.

    Discovery reads the installed distributions' metadata from disk: call the functions of
    this module at start-up or in a thread, not on a running event loop.
    """
    from importlib.metadata import entry_points

    return sorted({*_BUILTIN, *(ep.name for ep in entry_points(group=ENTRY_POINT_GROUP))})


def connector_class(kind: str) -> type[Connector]:
    """The connector class registered as ``kind``.

    Raises :class:`ConnectorNotFoundError` when no installed plugin provides it, and
    :class:`ConfigurationError` when the plugin is broken (fails to import, or its entry
    point is not a :class:`Connector` subclass).
    """
    if kind in _BUILTIN:
        return _BUILTIN[kind]
    from importlib.metadata import entry_points

    found = entry_points(group=ENTRY_POINT_GROUP, name=kind)
    if not found:
        raise ConnectorNotFoundError(kind, connector_types())
    entry_point = next(iter(found))
    try:
        loaded = entry_point.load()
    except Exception as exc:
        raise ConfigurationError(
            f"connector plugin {kind!r} ({entry_point.value}) failed to load: {exc}"
        ) from exc
    if not (isinstance(loaded, type) and issubclass(loaded, Connector)):
        raise ConfigurationError(
            f"connector plugin {kind!r} ({entry_point.value}) is not a Connector subclass"
        )
    return loaded


def create_connector(kind: str, options: Mapping[str, object] | None = None) -> Connector:
    """Build a connector of type ``kind`` from its configuration options."""
    return connector_class(kind).from_options(options or {})
