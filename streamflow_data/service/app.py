"""The service's HTTP application: one data manager behind the version 1 JSON API."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pydantic
from aiohttp import web

from streamflow_data import __version__
from streamflow_data.api import models as m
from streamflow_data.api.wire import (
    change_event,
    error_body,
    location_model,
    progress_model,
    replica_model,
)
from streamflow_data.changes import snapshot
from streamflow_data.errors import (
    AmbiguousLocationError,
    ConfigurationError,
    InvalidPathError,
    StreamFlowDataError,
    UnknownDeploymentError,
    UnknownLocationError,
    UnknownPathError,
)
from streamflow_data.manager import DefaultDataManager
from streamflow_data.manager.naming import resolve_location, valid_replica
from streamflow_data.model import DataType, ExecutionLocation, normalize_path
from streamflow_data.service.errors import FieldError, Handler, error_response, translate_errors
from streamflow_data.service.hub import ChangeHub
from streamflow_data.service.metrics import CONTENT_TYPE, render_metrics
from streamflow_data.service.openapi import Route, openapi_document
from streamflow_data.service.queued import QueuedBoard
from streamflow_data.service.transfers import Submitted, TransferBoard

__all__ = ["KEEPALIVE", "Route", "Service", "api_document"]

KEEPALIVE = 15.0
"""Seconds between comments on an idle event stream (a gone client is noticed then)."""
_BATCH = 1000  # changes per event-stream message
_TYPES = {"primary": DataType.PRIMARY, "symbolic_link": DataType.SYMBOLIC_LINK}


def _json(document: pydantic.BaseModel, status: int = 200) -> web.Response:
    return web.json_response(text=document.model_dump_json(), status=status)


def _path(text: str, field: str) -> str:
    """A path from a request: absolute, and without ``.`` or ``..`` components (which
    the data manager would fold: a client naming them means something else)."""
    if any(part in (".", "..") for part in text.split("/")):
        raise FieldError(field, InvalidPathError(f"path has a '.' or '..' component: {text!r}"))
    try:
        return normalize_path(text)
    except InvalidPathError as exc:
        raise FieldError(field, exc) from None


def _transfer_id(request: web.Request) -> int:
    text = request.match_info["id"]
    if not text.isdigit():
        raise FieldError("id", InvalidPathError(f"a transfer id is a number, not {text!r}"))
    return int(text)


async def _send(response: web.StreamResponse, event: str, data: str) -> None:
    await response.write(f"event: {event}\ndata: {data}\n\n".encode())


async def _event_stream(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
    )
    await response.prepare(request)
    return response


class Service:
    """A data manager served over HTTP: replica queries, graph changes (and their event
    stream), transfers with progress events, statistics, metrics and health.

    Transfers run as tasks of ``tasks`` (the caller's task group, which outlives them);
    with a ``token``, every request but ``/healthz`` must carry it as a bearer token.
    """

    def __init__(
        self,
        manager: DefaultDataManager,
        tasks: asyncio.TaskGroup,
        *,
        token: str | None = None,
        queue: int | None = None,
    ) -> None:
        self.manager = manager
        self.hub = ChangeHub()
        manager.add_observer(self.hub)
        self.board = self._board(tasks, queue)
        self._token = None if token is None else f"Bearer {token}".encode()
        self._started = time.monotonic()
        self._streams: set[asyncio.Task[object]] = set()
        self.routes = self._routes()

    def __repr__(self) -> str:
        return f"Service(manager={self.manager!r}, token={'set' if self._token else 'none'})"

    def _board(self, tasks: asyncio.TaskGroup, queue: int | None) -> TransferBoard:
        """The transfers of this service: run here, or, with ``queue`` (queue mode, that
        many at once), through the catalog's queue."""
        if queue is None:
            return TransferBoard(self.manager, self.hub, tasks)
        catalog = self.manager.catalog
        if catalog is None or catalog.settings.path == ":memory:":
            raise ConfigurationError("queue mode needs a catalog the services share")
        return QueuedBoard(self.manager, self.hub, tasks, catalog.queue, queue)

    def _routes(self) -> list[Route]:
        v = f"/{m.API_VERSION}"
        return [
            Route("GET", "/healthz", self.health, "Whether the service is up", m.Health),
            Route("GET", "/metrics", self.metrics, "Counters in the Prometheus text format"),
            Route("GET", f"{v}/openapi.json", self.openapi, "This API's OpenAPI document"),
            Route(
                "GET", f"{v}/deployments", self.deployments, "Deployments served", m.DeploymentList
            ),
            Route(
                "GET",
                f"{v}/replicas",
                self.replicas,
                "Every valid replica of a path",
                m.ReplicaList,
                query=m.ReplicaQuery,
            ),
            Route(
                "GET",
                f"{v}/source",
                self.source,
                "The replica a transfer to a deployment should read (waits for one being written)",
                m.SourceAnswer,
                query=m.SourceQuery,
            ),
            Route(
                "POST",
                f"{v}/changes",
                self.apply_changes,
                "Register replicas, relate them, invalidate paths",
                m.ChangesApplied,
                m.ChangeBatch,
            ),
            Route(
                "GET",
                f"{v}/changes",
                self.follow_changes,
                "The graph as a snapshot, then each change, as server-sent events",
                m.ChangeEvent,
                stream=True,
            ),
            Route(
                "POST",
                f"{v}/transfers",
                self.submit,
                "Start a transfer (returns at once)",
                m.TransferStatus,
                m.TransferRequest,
                status=202,
            ),
            Route(
                "GET",
                f"{v}/transfers",
                self.transfers,
                "Transfers held, newest first",
                m.TransferList,
            ),
            Route("GET", f"{v}/transfers/{{id}}", self.transfer, "One transfer", m.TransferStatus),
            Route(
                "DELETE",
                f"{v}/transfers/{{id}}",
                self.cancel,
                "Cancel a transfer (what it wrote is kept for a resume)",
                m.TransferStatus,
            ),
            Route(
                "GET",
                f"{v}/transfers/{{id}}/events",
                self.follow_transfer,
                "A transfer's status at each change, as server-sent events, until it ends",
                m.TransferStatus,
                stream=True,
            ),
            Route(
                "GET",
                f"{v}/journal",
                self.journal,
                "The catalog's journal of transfers",
                m.JournalList,
                query=m.JournalQuery,
            ),
            Route(
                "GET", f"{v}/statistics", self.statistics, "Totals of this run", m.StatisticsModel
            ),
        ]

    def application(self) -> web.Application:
        """The aiohttp application serving the API."""
        app = web.Application(
            middlewares=[translate_errors, self._authorize], client_max_size=16 * 1024 * 1024
        )
        for route in self.routes:
            app.router.add_route(route.method, route.path, route.handler)
        app.on_shutdown.append(self._end_streams)
        return app

    async def _end_streams(self, app: web.Application) -> None:
        """End every event stream: they would otherwise hold the shutdown until their
        next keep-alive."""
        for task in self._streams:
            task.cancel()

    @contextlib.contextmanager
    def _streaming(self) -> Iterator[None]:
        """Hold an event stream open; a client that goes away ends it quietly."""
        task = asyncio.current_task()
        assert task is not None
        self._streams.add(task)
        try:
            yield
        except ConnectionResetError:
            pass
        finally:
            self._streams.discard(task)

    @web.middleware
    async def _authorize(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if self._token is not None and request.path != "/healthz":
            given = request.headers.get("Authorization", "").encode()
            if not hmac.compare_digest(given, self._token):
                body = m.ErrorBody(type="Unauthorized", message="a valid bearer token is required")
                return error_response(401, body, **{"WWW-Authenticate": "Bearer"})
        return await handler(request)

    @property
    def _buffer_capacity(self) -> int:
        """The block pool's bound, in bytes: what file data in flight may take at most."""
        settings = self.manager.settings
        return settings.block_count * settings.block_size

    # -- locations ----------------------------------------------------------------------------

    def _location(self, ref: m.LocationRef, field: str, served: bool = True) -> ExecutionLocation:
        """The location a request names; with ``served=False`` one named in full may
        belong to a deployment without a connector (a replica tracked only)."""
        try:
            return resolve_location(self.manager, ref.deployment, ref.name, served=served)
        except UnknownDeploymentError as exc:
            raise FieldError(f"{field}.deployment", exc) from None
        except (AmbiguousLocationError, UnknownLocationError) as exc:
            raise FieldError(f"{field}.name", exc) from None

    # -- handlers -------------------------------------------------------------------------------

    async def health(self, request: web.Request) -> web.StreamResponse:
        uptime = time.monotonic() - self._started
        return _json(m.Health(status="ok", version=__version__, uptime=uptime))

    async def metrics(self, request: web.Request) -> web.StreamResponse:
        text = render_metrics(
            self.manager.statistics,
            self.board.counts(),
            self._buffer_capacity,
            len(self.manager.mapper),
        )
        return web.Response(text=text, headers={"Content-Type": CONTENT_TYPE})

    async def openapi(self, request: web.Request) -> web.StreamResponse:
        return web.json_response(openapi_document(self.routes, __version__))

    async def deployments(self, request: web.Request) -> web.StreamResponse:
        deployments = [
            m.DeploymentModel(
                name=name,
                locations=[location_model(loc) for loc in self.manager.locations(name)],
            )
            for name in self.manager.deployments()
        ]
        return _json(m.DeploymentList(deployments=deployments))

    async def replicas(self, request: web.Request) -> web.StreamResponse:
        query = m.ReplicaQuery.model_validate(dict(request.query))
        path = _path(query.path, "path")
        kind = None if query.type is None else _TYPES[query.type]
        found = self.manager.get_data_locations(path, query.deployment, query.location, kind)
        return _json(m.ReplicaList(path=path, replicas=[replica_model(r) for r in found]))

    async def source(self, request: web.Request) -> web.StreamResponse:
        query = m.SourceQuery.model_validate(dict(request.query))
        path = _path(query.path, "path")
        try:
            async with asyncio.timeout(query.timeout):
                choice = await self.manager.get_source_location(path, query.to)
        except TimeoutError:
            raise TimeoutError(
                f"no replica of {path!r} became available within {query.timeout} s"
            ) from None
        source = None if choice is None else replica_model(choice)
        return _json(m.SourceAnswer(path=path, to=query.to, source=source, seq=self.hub.seq))

    async def apply_changes(self, request: web.Request) -> web.StreamResponse:
        batch = m.ChangeBatch.model_validate_json(await request.read())
        checked = [self._check(op, f"operations.{i}") for i, op in enumerate(batch.operations)]
        replicas: list[m.ReplicaModel | None] = []
        with self.hub.labelled(batch.origin):
            for index, apply in enumerate(checked):
                try:
                    replicas.append(apply())
                except StreamFlowDataError as exc:
                    raise FieldError(f"operations.{index}", exc) from None
        await self.manager.flush()  # acknowledged: in the catalog, for the other services too
        return _json(m.ChangesApplied(seq=self.hub.seq, replicas=replicas))

    def _check(self, op: m.GraphOperation, field: str) -> Callable[[], m.ReplicaModel | None]:
        """Check an operation's locations and paths; what applies it."""
        manager = self.manager
        if isinstance(op, m.RegisterOperation):
            where = self._location(op.location, f"{field}.location", served=False)
            path = _path(op.path, f"{field}.path")

            def register() -> m.ReplicaModel:
                replica = manager.register_path(where, path, op.relpath, _TYPES[op.type])
                return replica_model(replica)

            return register
        if isinstance(op, m.InvalidateOperation):
            where = self._location(op.location, f"{field}.location", served=False)
            path = _path(op.path, f"{field}.path")
            return lambda: manager.invalidate_location(where, path)
        ends = [
            (self._location(ref.location, f"{field}.{name}.location", served=False),
             _path(ref.path, f"{field}.{name}.path"))
            for name, ref in (("first", op.first), ("second", op.second))
        ]  # fmt: skip

        def relate() -> None:
            found = []
            for where, path in ends:
                replica = manager.mapper.resolve(where, path)
                if replica is None:
                    raise UnknownPathError(path, where)
                found.append(replica)
            manager.register_relation(found[0], found[1])

        return relate

    async def follow_changes(self, request: web.Request) -> web.StreamResponse:
        response = await _event_stream(request)
        with self._streaming(), self.hub.subscribe() as subscription:
            seq = self.hub.seq
            changes = list(snapshot(self.manager.mapper))
            for start in range(0, len(changes), _BATCH):
                batch = [change_event(c, 0, None) for c in changes[start : start + _BATCH]]
                await _send(response, "changes", _dump(batch))
            del changes
            await _send(response, "ready", json.dumps({"seq": seq}))
            queue = subscription.queue
            while True:
                try:
                    first = await asyncio.wait_for(queue.get(), KEEPALIVE)
                except TimeoutError:
                    await response.write(b": keepalive\n\n")
                    continue
                events: list[m.ChangeEvent | None] = [first]
                while not queue.empty() and len(events) < _BATCH:
                    events.append(queue.get_nowait())
                if None in events:  # too far behind: the client starts again
                    await _send(response, "overflow", "{}")
                    break
                await _send(response, "changes", _dump([e for e in events if e]))
        return response

    async def submit(self, request: web.Request) -> web.StreamResponse:
        order = m.TransferRequest.model_validate_json(await request.read())
        where = self._location(order.source.location, "source.location")
        path = _path(order.source.path, "source.path")
        targets = [
            (self._location(d.location, f"destinations.{i}.location"),
             _path(d.path, f"destinations.{i}.path"))
            for i, d in enumerate(order.destinations)
        ]  # fmt: skip
        source = await valid_replica(self.manager, where, path)
        if source is None:
            raise FieldError("source.path", UnknownPathError(path, where))
        submitted = await self.board.submit(source, targets, order.writable, order.links)
        return _json(self._status(submitted), 202)

    def _status(self, submitted: Submitted) -> m.TransferStatus:
        progress = submitted.progress
        return m.TransferStatus(
            id=submitted.id,
            state=submitted.state,
            source=replica_model(submitted.source),
            destinations=[
                m.PathRef(
                    location=m.LocationRef(deployment=loc.deployment, name=loc.name), path=path
                )
                for loc, path in submitted.targets
            ],
            writable=submitted.writable,
            submitted=submitted.submitted,
            finished=submitted.finished,
            progress=None if progress is None else progress_model(progress),
            failures=[
                m.TransferFailureModel(
                    location=location_model(f.location), path=f.path, error=error_body(f.cause)
                )
                for f in submitted.failures
            ],
            error=None if submitted.error is None else error_body(submitted.error),
            seq=submitted.seq,
        )

    async def _submitted(self, request: web.Request) -> Submitted:
        return await self.board.get(_transfer_id(request))

    async def transfers(self, request: web.Request) -> web.StreamResponse:
        return _json(m.TransferList(transfers=[self._status(t) for t in self.board]))

    async def transfer(self, request: web.Request) -> web.StreamResponse:
        return _json(self._status(await self._submitted(request)))

    async def cancel(self, request: web.Request) -> web.StreamResponse:
        submitted = await self.board.cancel(_transfer_id(request))
        if submitted.task is not None and not submitted.task.done():
            await asyncio.wait([submitted.task])  # the engine has cleaned up
        return _json(self._status(submitted))

    async def follow_transfer(self, request: web.Request) -> web.StreamResponse:
        submitted = await self._submitted(request)
        response = await _event_stream(request)
        with self._streaming():  # a client that goes away leaves the transfer running
            while True:
                changed = submitted.changed
                await _send(response, "status", self._status(submitted).model_dump_json())
                if submitted.done:
                    break
                try:
                    await asyncio.wait_for(changed.wait(), KEEPALIVE)
                except TimeoutError:
                    await response.write(b": keepalive\n\n")
        return response

    async def journal(self, request: web.Request) -> web.StreamResponse:
        query = m.JournalQuery.model_validate(dict(request.query))
        records = await self.manager.transfers(query.id)
        return _json(
            m.JournalList(
                transfers=[
                    m.JournalRecord(
                        id=r.id,
                        source=r.source,
                        targets=list(r.targets),
                        state=r.state,
                        files=r.files,
                        bytes=r.bytes,
                        started=r.started,
                        updated=r.updated,
                        verifications=list(r.verifications),
                    )
                    for r in records
                ]
            )
        )

    async def statistics(self, request: web.Request) -> web.StreamResponse:
        stats = self.manager.statistics
        cache = stats.cache
        document = m.StatisticsModel(
            locations=[
                m.LocationTotals(
                    location=location_model(location),
                    bytes_read=t.bytes_read,
                    bytes_written=t.bytes_written,
                    read_rate=t.read_rate,
                    write_rate=t.write_rate,
                )
                for location, t in stats.locations.items()
            ],
            errors=dict(stats.errors),
            retries=stats.retries,
            buffer_peak_bytes=stats.buffer_peak_bytes,
            buffer_bytes_in_use=stats.buffer_bytes_in_use,
            buffer_capacity_bytes=self._buffer_capacity,
            cache=m.CacheModel(
                hits=cache.hits,
                misses=cache.misses,
                evictions=cache.evictions,
                bytes_evicted=cache.bytes_evicted,
                bytes_used=cache.bytes_used,
                budget=cache.budget,
            ),
            transfers=self.board.counts(),
        )
        return _json(document)


def _dump(events: Sequence[m.ChangeEvent]) -> str:
    return "[" + ",".join(event.model_dump_json(exclude_defaults=True) for event in events) + "]"


def api_document() -> dict[str, Any]:
    """The OpenAPI document a service serves at ``/v1/openapi.json``, without running one
    (for the docs and for client generators)."""
    service = Service(DefaultDataManager(), asyncio.TaskGroup())
    return openapi_document(service.routes, __version__)
