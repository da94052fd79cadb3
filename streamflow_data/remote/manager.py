"""The DataManager contract over a running service's HTTP API."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Sequence
from typing import Self

from streamflow_data.api import models as m
from streamflow_data.api.wire import graph_change, location, progress, restore_error
from streamflow_data.changes import apply_change
from streamflow_data.contract import DataManager
from streamflow_data.errors import (
    StreamFlowDataError,
    TransferCancelledError,
    TransferError,
    TransferFailure,
    UnknownDeploymentError,
)
from streamflow_data.mapper import RemotePathMapper
from streamflow_data.model import DataLocation, DataType, ExecutionLocation, normalize_path
from streamflow_data.remote.client import ServiceClient
from streamflow_data.transfer.events import TransferListener

__all__ = ["RemoteDataManager"]

logger = logging.getLogger(__name__)

_WAIT = 3600.0  # the longest wait the service allows for one source query, in seconds


def _ref(where: ExecutionLocation) -> m.LocationRef:
    return m.LocationRef(deployment=where.deployment, name=where.name)


def _path_ref(where: ExecutionLocation, path: str) -> m.PathRef:
    return m.PathRef(location=_ref(where), path=path)


class RemoteDataManager(DataManager):
    """A data manager living in a service (``streamflow-data serve``) at ``url``:
    ``unix:///PATH`` or ``http://HOST:PORT``, with a bearer ``token`` when it requires one.

    It keeps a mirror of the service's replica graph, filled from a snapshot when it opens
    and kept current by the service's stream of changes, so that the contract's
    synchronous methods answer at once: registrations, relations and invalidations apply to
    the mirror and are sent in order behind the caller's back (the next awaited call sends
    them first, and raises if the service refused one); queries read the mirror. A client
    sees its own changes at once and everyone else's as the stream brings them; after an
    awaited call it sees everything that call caused. ``listeners`` receive the progress of
    this client's transfers.
    """

    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        listeners: Sequence[TransferListener] = (),
    ) -> None:
        self._client = ServiceClient(url, token)
        self.mapper = RemotePathMapper()
        """The mirror of the service's replica graph."""
        self.listeners = list(listeners)
        self._origin = uuid.uuid4().hex
        self._pending: list[m.GraphOperation] = []
        self._sender: asyncio.Task[None] | None = None
        self._follower: asyncio.Task[None] | None = None
        self._seq = 0
        self._advanced = asyncio.Event()
        self._failure: StreamFlowDataError | None = None
        self._deployments: dict[str, list[ExecutionLocation]] = {}

    def __repr__(self) -> str:
        return f"RemoteDataManager({self._client.url!r})"

    @property
    def client(self) -> ServiceClient:
        """The HTTP client (for the API beyond the contract: statistics, journal)."""
        return self._client

    async def open(self) -> Self:
        """Load the service's deployments and graph and follow its changes; raises
        :class:`LocationUnreachableError` when the service cannot be reached."""
        if self._follower is None:
            try:
                await self._start()
            except BaseException:
                await self.close()
                raise
        return self

    async def _start(self) -> None:
        found = await self._client.call("GET", "/v1/deployments", m.DeploymentList)
        self._deployments = {
            d.name: [location(loc) for loc in d.locations] for d in found.deployments
        }
        ready = asyncio.Event()
        self._follower = asyncio.create_task(self._follow(ready))
        waiting = asyncio.create_task(ready.wait())
        await asyncio.wait({self._follower, waiting}, return_when=asyncio.FIRST_COMPLETED)
        waiting.cancel()
        self._check()

    async def __aenter__(self) -> Self:
        return await self.open()

    async def _follow(self, ready: asyncio.Event) -> None:
        """Apply the service's changes to the mirror (this client's own were applied when
        made), until closed; a broken stream is recorded and raised by the next call."""
        try:
            async for name, data in self._client.events("/v1/changes"):
                if name == "changes":
                    for item in data:
                        event = m.ChangeEvent.model_validate(item)
                        if event.origin != self._origin:
                            apply_change(self.mapper, graph_change(event))
                        self._advance(event.seq)
                elif name == "ready":
                    self._advance(int(data["seq"]))
                    ready.set()
                elif name == "overflow":
                    raise StreamFlowDataError(
                        "this client fell too far behind the service's changes"
                    )
            raise StreamFlowDataError(f"{self._client.url} ended its stream of changes")
        except StreamFlowDataError as exc:
            self._failure = self._failure or exc
            self._advance(self._seq)

    def _advance(self, seq: int) -> None:
        self._seq = max(self._seq, seq)
        advanced, self._advanced = self._advanced, asyncio.Event()
        advanced.set()

    async def _caught_up(self, seq: int | None) -> None:
        """Wait until the mirror holds every change up to ``seq``."""
        while seq is not None and self._seq < seq:
            self._check()
            await self._advanced.wait()

    def _check(self) -> None:
        if self._failure is not None:
            raise self._failure

    # -- the replica graph: the mirror, then the service ------------------------------------

    def _send(self, operation: m.GraphOperation) -> None:
        self._pending.append(operation)
        if self._sender is None or self._sender.done():
            with contextlib.suppress(RuntimeError):  # no running loop: sent by the next call
                self._sender = asyncio.get_running_loop().create_task(self._send_pending())

    async def _send_pending(self) -> None:
        while self._pending and self._failure is None:
            batch = self._pending[: m.MAX_OPERATIONS]
            del self._pending[: len(batch)]
            try:
                await self._client.call(
                    "POST",
                    "/v1/changes",
                    m.ChangesApplied,
                    body=m.ChangeBatch(operations=batch, origin=self._origin),
                )
            except StreamFlowDataError as exc:
                self._failure = exc

    async def flush(self) -> None:
        """Send every change made so far; raises what the service refused, if anything."""
        if self._pending and (self._sender is None or self._sender.done()):
            self._sender = asyncio.create_task(self._send_pending())
        if self._sender is not None:
            await asyncio.shield(self._sender)
        self._check()

    def register_path(
        self,
        location: ExecutionLocation,
        path: str,
        relpath: str | None = None,
        data_type: DataType = DataType.PRIMARY,
    ) -> DataLocation:
        """Record that ``path`` on ``location`` holds data (its parents are recorded too)."""
        replica = self.mapper.register(location, path, relpath, data_type)
        if data_type is DataType.INVALID:
            self._send(
                m.InvalidateOperation(op="invalidate", location=_ref(location), path=replica.path)
            )
        else:
            kind: m.ReplicaType = "primary" if data_type is DataType.PRIMARY else "symbolic_link"
            self._send(
                m.RegisterOperation(
                    op="register",
                    location=_ref(location),
                    path=replica.path,
                    relpath=relpath,
                    type=kind,
                )
            )
        return replica

    def register_relation(self, src_location: DataLocation, dst_location: DataLocation) -> None:
        """Record that two registered replicas hold the same data."""
        for replica in (src_location, dst_location):
            if self.mapper.derived(replica):  # answered inside a registered directory
                self.register_path(replica.location, replica.path, None, replica.data_type)
        self.mapper.register_relation(src_location, dst_location)
        self._send(
            m.RelateOperation(
                op="relate",
                first=_path_ref(src_location.location, src_location.path),
                second=_path_ref(dst_location.location, dst_location.path),
            )
        )

    def invalidate_location(self, location: ExecutionLocation, path: str) -> None:
        """Record that ``path`` and everything below it on ``location`` is gone."""
        path = normalize_path(path)
        self.mapper.invalidate(location, path)
        self._send(m.InvalidateOperation(op="invalidate", location=_ref(location), path=path))

    def get_data_locations(
        self,
        path: str,
        deployment: str | None = None,
        location_name: str | None = None,
        data_type: DataType | None = None,
    ) -> list[DataLocation]:
        """Every valid replica of the data at ``path`` the mirror knows."""
        return self.mapper.get(path, deployment, location_name, data_type)

    def locations(self, deployment: str) -> Sequence[ExecutionLocation]:
        """The locations of a deployment the service serves (as of :meth:`open`)."""
        found = self._deployments.get(deployment)
        if found is None:
            raise UnknownDeploymentError(deployment, list(self._deployments))
        return found

    async def get_source_location(self, path: str, dst_deployment: str) -> DataLocation | None:
        """The service's policy's choice, once it is fully written (as the mirror holds it)."""
        path = normalize_path(path)
        await self.flush()
        query: dict[str, str | float] = {"path": path, "to": dst_deployment, "timeout": _WAIT}
        while True:
            try:
                answer = await self._client.call("GET", "/v1/source", m.SourceAnswer, params=query)
                break
            except TimeoutError:
                continue  # still being written: the contract waits as long as it takes
        if answer.source is None:
            return None
        await self._caught_up(answer.seq)
        where = location(answer.source.location)
        found = self.mapper.resolve(where, answer.source.path)
        return found or DataLocation(where, answer.source.path, answer.source.relpath)

    # -- transfers ------------------------------------------------------------------------------

    async def transfer_data(
        self,
        src_location: ExecutionLocation,
        src_path: str,
        dst_locations: Sequence[ExecutionLocation],
        dst_path: str,
        writable: bool = False,
    ) -> None:
        """Copy ``src_path`` on ``src_location`` to ``dst_path`` on every destination."""
        targets = [(where, dst_path) for where in dst_locations]
        await self.transfer_to(src_location, src_path, targets, writable)

    async def transfer_to(
        self,
        src_location: ExecutionLocation,
        src_path: str,
        targets: Sequence[tuple[ExecutionLocation, str]],
        writable: bool = False,
        *,
        links: bool = True,
        listeners: Sequence[TransferListener] = (),
    ) -> None:
        """Copy the source to each ``(location, path)`` target, reading it once, as
        :meth:`DefaultDataManager.transfer_to` does; cancelling the call cancels the
        transfer in the service (what it wrote is kept for a resume)."""
        await self.flush()
        request = m.TransferRequest(
            source=_path_ref(src_location, normalize_path(src_path)),
            destinations=[_path_ref(where, normalize_path(path)) for where, path in targets],
            writable=writable,
            links=links,
        )
        status = await self._client.call("POST", "/v1/transfers", m.TransferStatus, body=request)
        try:
            status = await self._follow_transfer(status, [*self.listeners, *listeners])
        except asyncio.CancelledError:
            await asyncio.shield(
                self._client.call("DELETE", f"/v1/transfers/{status.id}", m.TransferStatus)
            )
            raise
        await self._caught_up(status.seq)
        if status.state == "done":
            return
        if status.failures:
            failures = [
                TransferFailure(f.path, location(f.location), restore_error(f.error))
                for f in status.failures
            ]
            raise TransferError(request.source.path, failures)
        if status.state in ("suspended", "cancelled"):
            raise TransferCancelledError(f"transfer {status.id} was {status.state} in the service")
        assert status.error is not None
        raise restore_error(status.error)

    async def _follow_transfer(
        self, status: m.TransferStatus, listeners: Sequence[TransferListener]
    ) -> m.TransferStatus:
        async for name, data in self._client.events(f"/v1/transfers/{status.id}/events"):
            if name != "status":
                continue
            status = m.TransferStatus.model_validate(data)
            if status.progress is not None:
                snapshot = progress(status.progress)
                for listener in listeners:
                    listener(snapshot)
            if status.state not in ("queued", "running"):
                return status
        raise StreamFlowDataError(f"the service ended the events of transfer {status.id} early")

    async def close(self) -> None:
        """Send the changes not sent yet, stop following the service and close the
        connections (the service goes on); raises what the service refused, if anything."""
        try:
            if self._follower is not None and self._failure is None:
                await self.flush()
        finally:
            if self._follower is not None:
                self._follower.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._follower
            await self._client.close()
