"""The OpenAPI 3.1 document of the service, made from its routes and the API's models."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pydantic
from pydantic.json_schema import models_json_schema

from streamflow_data.api.models import ErrorDocument
from streamflow_data.service.errors import Handler

__all__ = ["Route", "openapi_document"]

_REF = "#/components/schemas/{model}"


@dataclass(frozen=True, slots=True)
class Route:
    """One operation of the API: what the application routes and the OpenAPI document
    describes."""

    method: str
    path: str
    handler: Handler
    summary: str
    response: type[pydantic.BaseModel] | None = None
    body: type[pydantic.BaseModel] | None = None
    query: type[pydantic.BaseModel] | None = None
    status: int = 200
    stream: bool = False
    """An event stream (``text/event-stream``) of ``response`` documents."""


def _parameters(route: Route) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    if "{id}" in route.path:
        found.append({"name": "id", "in": "path", "required": True, "schema": {"type": "integer"}})
    if route.query is not None:
        schema = route.query.model_json_schema(ref_template=_REF)
        for name, field in route.query.model_fields.items():
            found.append(
                {
                    "name": name,
                    "in": "query",
                    "required": field.is_required(),
                    "description": field.description or "",
                    "schema": schema["properties"][name],
                }
            )
    return found


def _content(model: type[pydantic.BaseModel], stream: bool) -> dict[str, Any]:
    schema = {"$ref": _REF.format(model=model.__name__)}
    if stream:
        return {"text/event-stream": {"schema": {"type": "string"}, "x-event-schema": schema}}
    return {"application/json": {"schema": schema}}


def openapi_document(routes: Sequence[Route], version: str) -> dict[str, Any]:
    """The document describing ``routes``: their parameters, bodies, answers and errors."""
    models: set[type[pydantic.BaseModel]] = {ErrorDocument}
    models.update(r.response for r in routes if r.response is not None)
    models.update(r.body for r in routes if r.body is not None)
    _, schemas = models_json_schema(
        [(model, "serialization") for model in sorted(models, key=lambda c: c.__name__)],
        ref_template=_REF,
    )
    error = {"description": "An error", "content": _content(ErrorDocument, False)}
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        answer: dict[str, Any] = {"description": route.summary}
        if route.response is not None:
            answer["content"] = _content(route.response, route.stream)
        operation: dict[str, Any] = {
            "summary": route.summary,
            "operationId": route.handler.__name__,
            "parameters": _parameters(route),
            "responses": {str(route.status): answer, "4XX": error, "5XX": error},
        }
        if route.body is not None:
            operation["requestBody"] = {"required": True, "content": _content(route.body, False)}
        paths.setdefault(route.path, {})[route.method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {"title": "streamflow-data", "version": version},
        "paths": paths,
        "components": {
            "schemas": schemas.get("$defs", {}),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{}, {"bearer": []}],
    }
