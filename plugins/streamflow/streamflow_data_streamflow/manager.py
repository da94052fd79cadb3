"""The ``streamflow-data`` DataManager of StreamFlow: StreamFlow's answers, this project's
engine for the bytes.

Registrations, relations, invalidations and queries give what StreamFlow's own
``DefaultDataManager`` gives, on StreamFlow's own ``DataLocation`` objects
(:mod:`~streamflow_data_streamflow.index`): its workflow code depends on those answers to
the relpath. Every transfer goes through a :class:`~streamflow_data.DefaultDataManager`
(:mod:`~streamflow_data_streamflow.transfers`): read once for all its destinations, in
chunks of a bounded block pool, verified, journaled for resumption in the catalog, with
progress and statistics; each deployment served as
:mod:`~streamflow_data_streamflow.deployments` says.

This module imports nothing of the engine: StreamFlow imports it with the plugin at every
start, whichever data manager the run uses, and the engine's modules are imported when
StreamFlow builds this manager.
"""

from __future__ import annotations

import asyncio
import posixpath
from collections.abc import Awaitable, Iterable, MutableSequence
from dataclasses import dataclass
from importlib import resources
from typing import TYPE_CHECKING, Any

from streamflow.core.data import DataLocation, DataManager, DataType
from streamflow.core.exception import WorkflowExecutionException
from streamflow.data.remotepath import StreamFlowPath, get_inner_path

from streamflow_data_streamflow.index import ReplicaIndex

if TYPE_CHECKING:
    from streamflow_data import DefaultDataManager
    from streamflow_data_streamflow.options import DataManagerOptions

__all__ = ["SCHEMA_FILE", "StreamFlowDataManager"]

SCHEMA_FILE = "data_manager.json"
"""The JSON schema of the manager's ``config``, shipped in this package (generated from
:class:`~streamflow_data_streamflow.options.DataManagerOptions`, and checked against it
by the tests)."""


@dataclass(slots=True)
class _Destination:
    """One destination of a transfer: StreamFlow's location, the path written there (in
    a directory that existed: below it), and the replica registered for it."""

    location: Any
    path: str
    replica: DataLocation
    copy_of: str | None
    """On the location of a PRIMARY replica of the source: that replica's path, copied
    (or, not writable, linked) in place rather than moved from the source's location."""


class StreamFlowDataManager(DataManager):  # type: ignore[misc]  # StreamFlow is untyped
    """StreamFlow's DataManager contract over streamflow-data (see the module).

    Built by StreamFlow as ``cls(context=..., **config)`` from ``dataManager.config`` of a
    ``streamflow.yml`` (:class:`~streamflow_data_streamflow.options.DataManagerOptions`).
    """

    def __init__(self, context: Any, **config: Any) -> None:
        from streamflow_data_streamflow.transfers import Transfers  # see the module

        super().__init__(context)
        self._index = ReplicaIndex()
        self._transfers = Transfers(context, config, self._evicted)
        self.options: DataManagerOptions = self._transfers.options
        """The validated configuration."""
        self.engine: DefaultDataManager = self._transfers.engine
        """This project's manager, which moves every byte (its statistics, progress
        listeners and catalog are the transfers')."""

    @classmethod
    def get_schema(cls) -> str:
        return resources.files(__package__).joinpath(SCHEMA_FILE).read_text()

    async def close(self) -> None:
        """Wait for transfers in flight, log what moved where, close the connectors."""
        await self._transfers.close()

    # -- StreamFlow's answers ---------------------------------------------------------------

    def get_data_locations(
        self,
        path: str,
        deployment: str | None = None,
        location_name: str | None = None,
        data_type: DataType | None = None,
    ) -> MutableSequence[DataLocation]:
        if deployment is not None and location_name is not None:
            self._transfers.warm_up(deployment, location_name)
        found = self._index.get(path, deployment, location_name, data_type)
        return [replica for replica in found if replica.data_type != DataType.INVALID]

    async def get_source_location(self, path: str, dst_deployment: str) -> DataLocation | None:
        """A PRIMARY replica of ``path`` once written: on ``dst_deployment`` if there is
        one, else on the local node, else any (StreamFlow's order of preference)."""
        candidates = self.get_data_locations(path, data_type=DataType.PRIMARY)
        preferred = [
            [c for c in candidates if c.deployment == dst_deployment],
            [c for c in candidates if c.location.local],
            candidates,
        ]
        for group in preferred:
            for replica in group:
                await replica.available.wait()
                if replica.data_type == DataType.PRIMARY:
                    return replica
        return None

    def invalidate_location(self, location: Any, path: str) -> None:
        """Invalidate ``path`` and below on ``location`` (StreamFlow passes a
        ``DataLocation`` here at times: its location is meant)."""
        if isinstance(location, DataLocation):
            location = location.location
        self._index.invalidate(location, path)
        self._transfers.invalidate(location, path)

    def register_path(
        self,
        location: Any,
        path: str,
        relpath: str | None = None,
        data_type: DataType = DataType.PRIMARY,
    ) -> DataLocation:
        """Register ``path`` and its parents on ``location`` and, where the location
        wraps another (a container on a host), the same data at its path there."""
        first = self._new(location, path, relpath or path, data_type)
        self.context.checkpoint_manager.register(first)
        registered = [first]
        while (inner := self._inner(location, path)) is not None:
            path, location = inner, location.wraps
            registered.append(self._new(location, path, relpath or path, data_type))
            self.register_relation(first, registered[-1])
        for replica in registered:
            replica.available.set()
        return first

    def _new(self, location: Any, path: str, relpath: str, data_type: DataType) -> DataLocation:
        replica = DataLocation(location=location, path=path, relpath=relpath, data_type=data_type)
        self._index.put(path, replica, parents=True)
        return replica

    def _inner(self, location: Any, path: str) -> str | None:
        """``path`` as seen on the location ``location`` wraps, if it is mounted there."""
        inner = get_inner_path(StreamFlowPath(path, context=self.context, location=location))
        return None if inner is None else str(inner)

    def register_relation(self, src_location: DataLocation, dst_location: DataLocation) -> None:
        self._index.relate(src_location, dst_location)

    def _evicted(self, deployment: str, path: str) -> None:
        """The engine's cache removed a local copy: StreamFlow's replicas of it go too."""
        for replica in self._index.get(path, deployment=deployment):
            if replica.location.local:
                self._index.invalidate(replica.location, path)

    # -- transfers ------------------------------------------------------------------------

    async def transfer_data(
        self,
        src_location: Any,
        src_path: str,
        dst_locations: MutableSequence[Any],
        dst_path: str,
        writable: bool = False,
    ) -> None:
        """Copy ``src_path`` to ``dst_path`` on every destination, registering each copy
        as StreamFlow's manager does: into an existing directory, below it; not writable,
        related to the source (and a link to a PRIMARY replica already on the
        destination's location). A failed copy leaves its replica INVALID and available,
        so that nothing waits on it; the error is StreamFlow's
        ``WorkflowExecutionException``."""
        await self._transfers.open()
        resolved = await StreamFlowPath(
            src_path, context=self.context, location=src_location
        ).resolve()
        if resolved is None:
            raise WorkflowExecutionException(
                f"Error retrieving realpath for {src_path} on location {src_location} "
                f"while transferring it to {dst_path}"
            )
        source = str(resolved)
        registered = self._index.get(source)
        if not registered:
            raise WorkflowExecutionException(f"No data locations found for path {source}")
        destinations: list[_Destination] = []
        try:
            for location in dst_locations:
                destinations.append(
                    await self._destination(location, dst_path, source, registered[0], writable)
                )
            await self._copy(src_location, source, destinations, writable)
        except BaseException:
            for destination in destinations:
                self._index.invalidate(destination.location, destination.path)
                destination.replica.available.set()
            raise
        for destination in destinations:
            self._publish(destination, writable)

    async def _destination(
        self, location: Any, dst_path: str, source: str, registered: DataLocation, writable: bool
    ) -> _Destination:
        copy_of = None
        for replica in self._index.get(source, data_type=DataType.PRIMARY):
            if replica.deployment == location.deployment and replica.name == location.name:
                await replica.available.wait()
                copy_of = replica.path
                break
        parent = posixpath.dirname(dst_path)
        # As StreamFlow's manager does, the parent made and the path asked whether it is a
        # directory; at once, one round trip: a path whose parent is not there is none.
        checks: list[Awaitable[object]] = [self._is_dir(location, dst_path)]
        if not self.get_data_locations(parent, location.deployment, location.name):
            checks.append(self._make_directory(location, parent))
        path = dst_path
        if (await _all(checks))[0]:
            path = posixpath.join(dst_path, posixpath.basename(source))
        self.register_path(location, posixpath.dirname(path))
        replica = DataLocation(
            location=location, path=path, relpath=registered.relpath, data_type=DataType.PRIMARY
        )
        self._index.put(path, replica)
        if not writable:
            self._index.relate(registered, replica)
        return _Destination(location, path, replica, copy_of)

    async def _make_directory(self, location: Any, path: str) -> None:
        """``path`` and its missing parents made on ``location``: a file copied into a
        directory that is not there yet is then written once, not tried, refused and
        sent again after the engine makes its parent."""
        if await self._transfers.driven(location):
            await self._transfers.make_directory(location, path)
        else:
            await StreamFlowPath(path, context=self.context, location=location).mkdir(
                mode=0o777, parents=True, exist_ok=True
            )

    async def _is_dir(self, location: Any, path: str) -> bool:
        if await self._transfers.driven(location):
            return await self._transfers.is_dir(location, path)
        return bool(await StreamFlowPath(path, context=self.context, location=location).is_dir())

    async def _copy(
        self, src_location: Any, source: str, destinations: list[_Destination], writable: bool
    ) -> None:
        """Copy in place where the destination's location has the data, else from the
        source's location to all the others at once."""
        remote = [d for d in destinations if d.copy_of is None]
        in_place = [
            self._move(d.location, d.copy_of, [d], writable)
            for d in destinations
            if d.copy_of is not None
        ]
        await _all(
            [*in_place, *([self._move(src_location, source, remote, writable)] if remote else [])]
        )

    async def _move(
        self, src_location: Any, source: str, destinations: list[_Destination], writable: bool
    ) -> None:
        places = [src_location, *(d.location for d in destinations)]
        driven = [await self._transfers.driven(place) for place in places]
        if all(driven):
            targets = [(d.location, d.path) for d in destinations]
            await self._transfers.copy(src_location, source, targets, writable)
        else:
            await self._streamflow_copy(src_location, source, destinations, writable)

    async def _streamflow_copy(
        self, src_location: Any, source: str, destinations: list[_Destination], writable: bool
    ) -> None:
        """The deployment's own copy methods, for what this project's engine cannot reach."""
        manager = self.context.deployment_manager
        src_connector = manager.get_connector(src_location.deployment)
        for destination in destinations:
            dst_connector = manager.get_connector(destination.location.deployment)
            if src_location.local:
                await dst_connector.copy_local_to_remote(
                    src=source,
                    dst=destination.path,
                    locations=[destination.location],
                    read_only=not writable,
                )
            elif destination.location.local:
                await src_connector.copy_remote_to_local(
                    src=source,
                    dst=destination.path,
                    location=src_location,
                    read_only=not writable,
                )
            else:
                await dst_connector.copy_remote_to_remote(
                    src=source,
                    dst=destination.path,
                    locations=[destination.location],
                    source_location=src_location,
                    source_connector=src_connector,
                    read_only=not writable,
                )

    def _publish(self, destination: _Destination, writable: bool) -> None:
        """The copy is complete: its kind, its replicas on wrapped locations, available."""
        replica = destination.replica
        if not writable:
            linked = destination.copy_of is not None and destination.copy_of != destination.path
            replica.data_type = DataType.SYMBOLIC_LINK if linked else DataType.PRIMARY
        path, location = replica.path, replica.location
        while (inner := self._inner(location, path)) is not None:
            path, location = inner, location.wraps
            found = self._index.get(path, location.deployment, location.name)
            wrapped = (
                found[0]
                if found
                else DataLocation(
                    location=location,
                    path=path,
                    relpath=replica.relpath,
                    data_type=replica.data_type,
                    available=True,
                )
            )
            self._index.relate(replica, wrapped)
        replica.available.set()


async def _all(work: Iterable[Awaitable[object]]) -> list[object]:
    """Run ``work`` concurrently to its end and return the results; raise the first
    failure as it is (StreamFlow handles its own exception types, not groups of them)."""
    results = await asyncio.gather(*work, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return results
