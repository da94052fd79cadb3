"""HTTP to a running service: requests whose answers are API documents, event streams,
and the service's errors raised as the library's own types."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from typing import Any, TypeVar

import aiohttp
import pydantic

from streamflow_data.api.models import ErrorDocument
from streamflow_data.api.wire import restore_error
from streamflow_data.errors import (
    AuthenticationError,
    LocationUnreachableError,
    StreamFlowDataError,
)
from streamflow_data.location import ExecutionLocation

__all__ = ["ServiceClient"]

M = TypeVar("M", bound=pydantic.BaseModel)

_SERVICE = ExecutionLocation("service", "service")
"""What errors about the service connection name as their location."""


class ServiceClient:
    """A connection pool to the service at ``url`` (``unix:///PATH`` or
    ``http://HOST:PORT``), sending ``token`` as a bearer token when given. The token is
    never part of its repr or of an error message."""

    def __init__(self, url: str, token: str | None = None, *, connections: int = 100) -> None:
        if url.startswith("unix://"):
            connector: aiohttp.BaseConnector = aiohttp.UnixConnector(
                url.removeprefix("unix://"), limit=connections
            )
            self._base = "http://service"
        elif url.startswith(("http://", "https://")):
            connector = aiohttp.TCPConnector(limit=connections)
            self._base = url.rstrip("/")
        else:
            raise StreamFlowDataError(f"a service URL is unix:///PATH or http://HOST:PORT: {url!r}")
        self.url = url
        headers = {} if token is None else {"Authorization": f"Bearer {token}"}
        self._session = aiohttp.ClientSession(
            connector=connector, headers=headers, timeout=aiohttp.ClientTimeout(total=None)
        )

    def __repr__(self) -> str:
        return f"ServiceClient({self.url!r})"

    async def close(self) -> None:
        await self._session.close()

    async def call(
        self,
        method: str,
        path: str,
        answer: type[M],
        *,
        params: Mapping[str, str | int | float] | None = None,
        body: pydantic.BaseModel | None = None,
    ) -> M:
        """Send a request; its answer as an ``answer`` document. A 4xx or 5xx answer raises
        the error it reports, of its own type (a service's timeout: :class:`TimeoutError`);
        no answer at all raises :class:`LocationUnreachableError`."""
        data = None if body is None else body.model_dump_json(exclude_none=True)
        try:
            async with self._session.request(
                method,
                self._base + path,
                params=params,
                data=data,
                headers={"Content-Type": "application/json"} if data is not None else None,
            ) as response:
                text = await response.read()
                status = response.status
        except aiohttp.ClientError as exc:
            raise self._unreachable(exc) from exc
        if status >= 400:
            raise self._error(status, text)
        return answer.model_validate_json(text)

    async def events(self, path: str) -> AsyncIterator[tuple[str, Any]]:
        """The server-sent events of ``path``: each event's name and JSON data."""
        try:
            async with self._session.get(self._base + path) as response:
                if response.status >= 400:
                    raise self._error(response.status, await response.read())
                name, data = "message", []
                async for raw in response.content:
                    line = raw.decode().rstrip("\r\n")
                    if line.startswith("event:"):
                        name = line[6:].strip()
                    elif line.startswith("data:"):
                        data.append(line[5:].lstrip())
                    elif not line and data:
                        yield name, json.loads("\n".join(data))
                        name, data = "message", []
        except aiohttp.ClientError as exc:
            raise self._unreachable(exc) from exc

    def _unreachable(self, error: BaseException) -> LocationUnreachableError:
        return LocationUnreachableError(_SERVICE, "", f"{self.url}: {error}")

    def _error(self, status: int, text: bytes) -> StreamFlowDataError | TimeoutError:
        try:
            body = ErrorDocument.model_validate_json(text).error
        except pydantic.ValidationError:
            return StreamFlowDataError(f"{self.url}: HTTP {status}: {text[:200]!r}")
        if status == 504:
            return TimeoutError(body.message)
        if status == 401:
            return AuthenticationError(_SERVICE, "", f"{self.url}: {body.message}")
        return restore_error(body)
