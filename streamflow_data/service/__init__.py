"""The data manager as a service: one process holding the manager, its catalog and its
connectors, answering schedulers and workflow managers over an HTTP API (docs/service.md)."""

from streamflow_data.service.app import Service, api_document
from streamflow_data.service.openapi import Route
from streamflow_data.service.server import TOKEN_ENVIRONMENT, Endpoint, read_token, running, serve

__all__ = [
    "TOKEN_ENVIRONMENT",
    "Endpoint",
    "Route",
    "Service",
    "api_document",
    "read_token",
    "running",
    "serve",
]
