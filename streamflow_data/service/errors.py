"""How the service answers what goes wrong: an HTTP status for each error type and a typed
JSON body naming the request field at fault, never a traceback."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import pydantic
from aiohttp import web

from streamflow_data.api.models import ErrorBody, ErrorDocument
from streamflow_data.api.wire import error_body
from streamflow_data.errors import (
    CatalogError,
    ConfigurationError,
    InvalidPathError,
    StreamFlowDataError,
    TransferLockedError,
    UnknownDeploymentError,
    UnknownLocationError,
    UnknownPathError,
    UnknownTransferError,
)

__all__ = ["FieldError", "Handler", "error_response", "status_of", "translate_errors"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

logger = logging.getLogger(__name__)

_STATUS: list[tuple[type[BaseException], int]] = [
    (InvalidPathError, 422),
    (ConfigurationError, 422),
    (UnknownPathError, 404),
    (UnknownDeploymentError, 404),
    (UnknownLocationError, 404),
    (UnknownTransferError, 404),
    (TransferLockedError, 409),
    (CatalogError, 503),
    (TimeoutError, 504),
]


class FieldError(Exception):
    """``error`` concerns the request field ``field`` (dotted: ``destinations.2.path``)."""

    def __init__(self, field: str, error: BaseException) -> None:
        super().__init__(str(error))
        self.field = field
        self.error = error


def status_of(error: BaseException) -> int:
    """The HTTP status that reports ``error``."""
    for kind, status in _STATUS:
        if isinstance(error, kind):
            return status
    return 500


def error_response(status: int, body: ErrorBody, **headers: str) -> web.Response:
    return web.json_response(
        text=ErrorDocument(error=body).model_dump_json(), status=status, headers=headers
    )


def _validation_body(error: pydantic.ValidationError) -> tuple[int, ErrorBody]:
    first = error.errors(include_url=False)[0]
    if first["type"] == "json_invalid":
        return 400, ErrorBody(type="MalformedJSON", message=f"the body is not JSON: {first['msg']}")
    field = ".".join(str(part) for part in first["loc"]) or None
    message = f"{field}: {first['msg']}" if field else first["msg"]
    return 422, ErrorBody(type="ValidationError", message=message, field=field)


@web.middleware
async def translate_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Answer every failure with a JSON error document."""
    try:
        return await handler(request)
    except FieldError as exc:
        return error_response(status_of(exc.error), error_body(exc.error, exc.field))
    except pydantic.ValidationError as exc:
        return error_response(*_validation_body(exc))
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        kind = exc.reason.title().replace(" ", "")
        return error_response(exc.status, ErrorBody(type=kind, message=exc.reason))
    except (StreamFlowDataError, TimeoutError) as exc:
        return error_response(status_of(exc), error_body(exc))
    except Exception as exc:
        logger.exception("%s %s failed", request.method, request.path)
        body = ErrorBody(type="InternalError", message=f"{type(exc).__name__}: see the log")
        return error_response(500, body)
