"""The default data manager: the replica graph, the catalog, the cache, and transfers."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from typing import Self, TypeVar

from streamflow_data.cache import CacheKey, ReplicaCache
from streamflow_data.catalog import Catalog, TransferRecord
from streamflow_data.changes import GraphObserver
from streamflow_data.config import CacheSettings, CatalogSettings, TransferSettings
from streamflow_data.connectors.base import Connector
from streamflow_data.connectors.local import LocalConnector
from streamflow_data.contract import DataManager
from streamflow_data.errors import (
    PathNotFoundError,
    StreamFlowDataError,
    TransferCancelledError,
    TransferError,
    TransferFailure,
    UnknownDeploymentError,
    UnknownLocationError,
    UnknownPathError,
)
from streamflow_data.manager.claims import Claims, Job, Request, key, plan_jobs
from streamflow_data.manager.feed import ChangeFeed
from streamflow_data.manager.fetches import Fetches, FetchPlan
from streamflow_data.mapper import RemotePathMapper
from streamflow_data.model import DataLocation, DataType, ExecutionLocation, normalize_path
from streamflow_data.policy import DefaultSourcePolicy, SourcePolicy
from streamflow_data.transfer.engine import CopyTarget, Endpoint, TransferEngine
from streamflow_data.transfer.events import TransferListener
from streamflow_data.transfer.journal import RunJournal
from streamflow_data.transfer.stats import Statistics

__all__ = ["LOCAL_DEPLOYMENT", "DefaultDataManager"]

LOCAL_DEPLOYMENT = "local"
"""The deployment name under which the local connector is always available."""

T = TypeVar("T")


class DefaultDataManager(DataManager):
    """The data manager: an in-memory replica graph over pluggable connectors.

    ``connectors`` maps deployment names to the connectors serving them; the manager owns
    them from then on and closes them in :meth:`close`. A :class:`LocalConnector` serves
    the deployment ``local`` unless the mapping provides another. Locations of deployments
    without a connector can still be registered and queried, only not transferred.

    ``settings`` tune the transfer engine and bound its memory; ``listeners`` receive the
    progress of every transfer; setting the ``shutdown`` event stops every transfer in
    flight, cleanly, with :class:`TransferCancelledError`.

    With a ``catalog`` (a SQLite file path, or :class:`CatalogSettings`), the replica
    graph and the journal of every transfer survive a restart, an interrupted transfer
    resumes where it stopped, and managers sharing the file never write the same
    destination at once. It is opened by :meth:`open` (or ``async with``), which must come
    before any registration. With a ``cache`` budget, replicas fetched to the local node
    are kept within it, least recently used ones evicted first; ``on_evict`` is told each
    evicted location and path before the removal (for an embedder's own records).
    """

    def __init__(
        self,
        connectors: Mapping[str, Connector] | None = None,
        *,
        policy: SourcePolicy | None = None,
        settings: TransferSettings | None = None,
        listeners: Sequence[TransferListener] = (),
        shutdown: asyncio.Event | None = None,
        catalog: CatalogSettings | str | None = None,
        cache: CacheSettings | None = None,
        on_evict: Callable[[ExecutionLocation, str], None] | None = None,
    ) -> None:
        if isinstance(catalog, str):
            catalog = CatalogSettings(path=catalog)
        self._catalog_settings = catalog
        self._catalog: Catalog | None = None
        self._feed = ChangeFeed()
        self._log: ChangeFeed | None = None
        """Reports changes of the graph, once the catalog is open or an observer added."""
        self._connectors: dict[str, Connector] = dict(connectors or {})
        self._connectors.setdefault(LOCAL_DEPLOYMENT, LocalConnector())
        self._location_names: dict[str, frozenset[str]] = {}
        self.policy: SourcePolicy = policy or DefaultSourcePolicy()
        """How :meth:`get_source_location` chooses among replicas."""
        self.mapper = RemotePathMapper()
        """The replica graph."""
        self._engine = TransferEngine(settings or TransferSettings(), listeners)
        self._cache = (
            None
            if cache is None
            else ReplicaCache(cache, self._evict, self._engine.statistics.cache)
        )
        self._on_evict = on_evict
        self._claims = Claims()
        self._fetches = Fetches()
        self._shutdown = shutdown
        self._closed = False

    async def open(self) -> Self:
        """Open the catalog and rebuild the replica graph saved in it (once; without a
        catalog there is nothing to do). Raises :class:`CatalogError` if it is unusable."""
        if self._catalog_settings is not None and self._catalog is None:
            catalog = await Catalog.open(self._catalog_settings)
            try:
                await catalog.load(self.mapper, self._feed.tell)
            except BaseException:
                await catalog.close()
                raise
            self._feed.log = catalog.replicas
            self._catalog, self._log = catalog, self._feed
        return self

    async def __aenter__(self) -> Self:
        return await self.open()

    @property
    def catalog(self) -> Catalog | None:
        """The open catalog, if one is configured."""
        return self._catalog

    async def flush(self) -> None:
        """Write every change made so far to the catalog (a no-op without one)."""
        if self._catalog is not None:
            await self._catalog.flush()

    async def transfers(self, transfer: int | None = None) -> list[TransferRecord]:
        """The transfers in the catalog's journal, newest first (or just ``transfer``)."""
        return await self._require_catalog().transfers(transfer)

    async def dump_state(self, transfer: int) -> str:
        """The per-file states of a journaled transfer, as CSV text."""
        return await self._require_catalog().dump_state(transfer)

    def _require_catalog(self) -> Catalog:
        if self._catalog is None:
            raise StreamFlowDataError("this data manager has no open catalog")
        return self._catalog

    @property
    def settings(self) -> TransferSettings:
        """The transfer settings in force."""
        return self._engine.settings

    @property
    def statistics(self) -> Statistics:
        """Bytes and rates per location and errors by type, over every transfer so far."""
        return self._engine.statistics

    def add_listener(self, listener: TransferListener) -> None:
        """Receive the progress of every later transfer."""
        self._engine.listeners.append(listener)

    def add_observer(self, observer: GraphObserver) -> None:
        """Be told each later change of the replica graph, as it is made (a service
        publishes them to its clients)."""
        self._feed.observers.append(observer)
        self._log = self._feed

    def connector(self, location: ExecutionLocation) -> Connector:
        """The connector serving ``location``.

        Raises :class:`UnknownDeploymentError` or :class:`UnknownLocationError` when no
        connector serves it.
        """
        connector = self._connectors.get(location.deployment)
        if connector is None:
            raise UnknownDeploymentError(location.deployment, list(self._connectors))
        names = self._location_names.get(location.deployment)
        if names is None or location.name not in names:  # a deployment's locations may grow
            names = frozenset(loc.name for loc in connector.locations(location.deployment))
            self._location_names[location.deployment] = names
        if location.name not in names:
            raise UnknownLocationError(location, sorted(names))
        return connector

    def add_connector(self, deployment: str, connector: Connector) -> None:
        """Serve ``deployment`` with ``connector`` from now on (a workflow manager deploys
        as it goes); the manager owns it and closes it in :meth:`close`.

        Raises :class:`StreamFlowDataError` if the deployment has a connector already.
        """
        self._check_open()
        if deployment in self._connectors:
            raise StreamFlowDataError(f"deployment {deployment!r} has a connector already")
        self._connectors[deployment] = connector

    def deployments(self) -> list[str]:
        """The deployments with a connector, by name."""
        return sorted(self._connectors)

    def locations(self, deployment: str = LOCAL_DEPLOYMENT) -> Sequence[ExecutionLocation]:
        """The locations of a deployment with a connector (``local`` by default)."""
        connector = self._connectors.get(deployment)
        if connector is None:
            raise UnknownDeploymentError(deployment, list(self._connectors))
        return connector.locations(deployment)

    # -- the replica graph -------------------------------------------------------------------

    def register_path(
        self,
        location: ExecutionLocation,
        path: str,
        relpath: str | None = None,
        data_type: DataType = DataType.PRIMARY,
    ) -> DataLocation:
        """Record that ``path`` on ``location`` holds data; see :meth:`RemotePathMapper.register`.

        Parent directories are registered too; registering again changes nothing.
        """
        log = self._recorder()
        replica = self.mapper.register(location, path, relpath, data_type)
        if log is not None:
            log.registered(replica)
        return replica

    def register_relation(self, src_location: DataLocation, dst_location: DataLocation) -> None:
        """Record that two registered replicas hold the same data (symmetric, transitive).

        A replica answered for a path inside a registered directory (see
        :meth:`get_data_locations`) is registered first.
        """
        log = self._recorder()
        for replica in (src_location, dst_location):
            self._adopt(replica)
        self.mapper.register_relation(src_location, dst_location)
        if log is not None:
            log.related(src_location, dst_location)

    def invalidate_location(self, location: ExecutionLocation, path: str) -> None:
        """Invalidate ``path`` and its subtree on ``location``; unknown paths are ignored."""
        self._invalidate(location, path)

    def _adopt(self, replica: DataLocation) -> None:
        """Register ``replica`` if it is one derived inside a registered directory."""
        if self.mapper.derived(replica):
            self.register_path(replica.location, replica.path, None, replica.data_type)

    def _recorder(self) -> ChangeFeed | None:
        """Where changes are reported, if anywhere; raises while a configured catalog is
        not open, so that no change is made that the catalog would miss."""
        if self._catalog is None and self._catalog_settings is not None:
            raise StreamFlowDataError(
                "the data manager's catalog is not open yet: use 'async with' or "
                "'await manager.open()' before registering or transferring"
            )
        return self._log

    def _invalidate(self, location: ExecutionLocation, path: str) -> None:
        """Invalidate in the graph, the catalog and the cache."""
        log = self._recorder()
        invalidated = self.mapper.invalidate(location, path)
        if not invalidated:
            return
        if log is not None:
            log.invalidated(location, normalize_path(path))
        if self._cache is not None:
            for replica in invalidated:
                self._cache.forget(key(replica.location, replica.path))

    def get_data_locations(
        self,
        path: str,
        deployment: str | None = None,
        location_name: str | None = None,
        data_type: DataType | None = None,
    ) -> list[DataLocation]:
        """Every valid replica of the data at ``path``, including ones still being written.

        A path inside a registered directory replica is answered too: its place in each
        valid replica of that directory (and of the directory's relatives), unless it was
        invalidated there; see :meth:`RemotePathMapper.get`.
        """
        return self.mapper.get(path, deployment, location_name, data_type)

    async def get_source_location(self, path: str, dst_deployment: str) -> DataLocation | None:
        """The policy's choice among valid PRIMARY replicas, once it is fully written.

        If the chosen replica is still being written, wait for it; if its transfer then
        failed, choose again among what remains.
        """
        while True:
            candidates = self.mapper.get(path, data_type=DataType.PRIMARY)
            choice = self.policy.select(candidates, dst_deployment)
            if choice is None:
                return None
            if self._cache is not None:
                self._cache.touch(key(choice.location, choice.path))
            if not any(choice is candidate for candidate in candidates):
                raise StreamFlowDataError(
                    f"source policy {self.policy!r} chose {choice!r}, which is not a candidate"
                )
            await choice.wait_available()
            if choice.valid:
                return choice

    # -- transfers ---------------------------------------------------------------------------

    async def transfer_data(
        self,
        src_location: ExecutionLocation,
        src_path: str,
        dst_locations: Sequence[ExecutionLocation],
        dst_path: str,
        writable: bool = False,
    ) -> None:
        """Copy ``src_path`` on ``src_location`` to ``dst_path`` on every destination.

        The source must be a valid replica: registered, or inside a registered directory
        (see :meth:`get_data_locations`). On its own location a
        non-writable destination becomes a symbolic link (nothing at all when the paths are
        equal) and a writable one a real copy. Non-writable copies join the source's replica
        set; writable ones are registered PRIMARY on their own, free to diverge. Concurrent
        calls writing the same destination from the same source copy once.

        Raises :class:`TransferError` listing every destination that failed; those hold no
        replica and nothing of the transfer at ``dst_path``; the others are registered.
        """
        targets = [(location, dst_path) for location in dst_locations]
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
        """Copy ``src_path`` on ``src_location`` to each ``(location, path)`` target,
        reading the source once for all of them; ``listeners`` receive this transfer's
        progress, beside the manager's own.

        :meth:`transfer_data` with a path of its own for each destination: the same rules,
        replicas and errors. Two targets on one location must not lie one inside the other
        (:class:`InvalidPathError`, before anything is written). With ``links=False``, a
        non-writable destination on the source's own location is a real copy too, still
        related to the source (the command line's ``cp``): a replica that survives the
        source's removal.
        """
        self._check_open()
        src_path = normalize_path(src_path)
        source = self.mapper.resolve(src_location, src_path)
        if source is None:
            raise UnknownPathError(src_path, src_location)
        self._adopt(source)  # a path inside a registered directory: registered itself now
        endpoint = Endpoint(self.connector(src_location), src_location)
        jobs, in_place = plan_jobs(source, targets, self.connector, writable, links)
        if in_place and writable:
            self.mapper.detach(source)  # it will be modified in place: no longer a copy
            if self._log is not None:
                self._log.detached(source)
        if not jobs:
            return
        await source.wait_available()
        if not source.valid:
            raise UnknownPathError(src_path, src_location)
        request = Request(src_location.deployment, src_location.name, src_path, writable, links)
        jobs = await self._claims.claim(jobs, request)
        locked = [(job.location, job.path) for job in jobs]
        try:
            if self._catalog is not None:
                await self._catalog.locks.acquire(locked)
        except BaseException:
            self._claims.release(jobs, succeeded=False)
            raise
        completed = False
        plan = self._fetches.plan(source, jobs, writable)
        fetch = plan.started
        try:
            with self._pinned(source):
                self._register_pending(jobs, source, writable)
                try:
                    await self._copy_fetched(plan, endpoint, source, jobs, listeners)
                except TransferCancelledError:
                    raise
                except StreamFlowDataError as exc:  # the source failed: so did every destination
                    for job in jobs:
                        job.error = job.error or exc
                completed = True
        finally:
            try:
                self._record_outcomes(jobs, source, writable, completed)
            finally:  # even if the catalog refused the outcome: release what was taken
                if self._catalog is not None:
                    await asyncio.shield(self._catalog.locks.release(locked))
                if fetch is not None:
                    self._fetches.settle(fetch, completed)
        if fetch is not None:
            await self._fetches.finish(fetch)
        failures = [TransferFailure(job.path, job.location, job.error) for job in jobs if job.error]
        if failures:
            raise TransferError(src_path, failures)

    async def _copy_fetched(
        self,
        plan: FetchPlan,
        source: Endpoint,
        replica: DataLocation,
        jobs: list[Job],
        listeners: Sequence[TransferListener],
    ) -> None:
        """Copy from the local copy of a fetch of the source, if ``plan`` has one that can
        be read (see :mod:`~streamflow_data.manager.fetches`); else, or if it fails to be
        read, from the source."""
        async with self._fetches.copy_of(plan, replica, self.connector) as copy:
            if copy is not None:
                try:
                    with self._pinned(copy):
                        local = Endpoint(self.connector(copy.location), copy.location)
                        await self._copy(local, copy, jobs, listeners)
                    return
                except TransferCancelledError:
                    raise
                except StreamFlowDataError:
                    pass
        await self._copy(source, replica, jobs, listeners)

    def _pinned(self, replica: DataLocation) -> contextlib.AbstractContextManager[None]:
        """Keep ``replica`` from eviction while it is read, if the local cache holds it."""
        if self._cache is None:
            return contextlib.nullcontext()
        return self._cache.in_use(key(replica.location, replica.path))

    def _register_pending(self, jobs: list[Job], source: DataLocation, writable: bool) -> None:
        """Register every destination as a replica not yet available."""
        for job in jobs:
            self._invalidate(job.location, job.path)
            data_type = DataType.SYMBOLIC_LINK if job.link else DataType.PRIMARY
            job.replica = self.mapper.register(
                job.location, job.path, data_type=data_type, available=False
            )
            if not writable:
                self.mapper.register_relation(source, job.replica)

    async def _copy(
        self,
        source: Endpoint,
        replica: DataLocation,
        jobs: list[Job],
        listeners: Sequence[TransferListener],
    ) -> None:
        for job in jobs:
            if job.link:
                try:
                    await job.connector.symlink(job.location, replica.path, job.path)
                except PathNotFoundError:
                    await job.connector.mkdir(job.location, job.path.rpartition("/")[0] or "/")
                    await job.connector.symlink(job.location, replica.path, job.path)
        copies = [job for job in jobs if not job.link]
        if not copies:
            return
        targets = [
            CopyTarget(
                job.connector,
                job.location,
                job.path,
                server_copy=job.same_location and job.connector.capabilities.server_side_copy,
                admit=self._admission(job),
            )
            for job in copies
        ]
        journal: RunJournal | None = None
        if self._catalog is not None:
            journal = await self._catalog.journal(
                source.location, replica.path, [(t.location, t.path) for t in targets]
            )
        try:
            errors = await self._unless_shut_down(
                self._engine.run(source, replica.path, targets, journal, listeners)
            )
        except PathNotFoundError as exc:
            if exc.location == source.location and exc.path == replica.path:
                self._invalidate(source.location, replica.path)
            raise
        for job, error in zip(copies, errors, strict=True):
            job.error = error

    async def _unless_shut_down(self, work: Coroutine[object, object, T]) -> T:
        """Run ``work``, cancelling it (it cleans up) if the shutdown event is set."""
        if self._shutdown is None:
            return await work
        task = asyncio.ensure_future(work)
        stop = asyncio.ensure_future(self._shutdown.wait())
        try:
            await asyncio.wait({task, stop}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if task.cancelled():
            raise TransferCancelledError("the data manager is shutting down")
        return task.result()

    def _admission(self, job: Job) -> Callable[[int], Awaitable[None]] | None:
        """How a copy fetched to the local node reserves room in the cache, if budgeted."""
        cache = self._cache
        if cache is None or not job.location.local or job.same_location:
            return None

        async def admit(size: int) -> None:
            job.reservation = await cache.reserve(job.key, size)

        return admit

    async def _evict(self, key: CacheKey) -> None:
        """Delete a cached replica from the local node and invalidate it."""
        deployment, name, path = key
        location = next(loc for loc in self.locations(deployment) if loc.name == name)
        self._invalidate(location, path)
        if self._on_evict is not None:
            self._on_evict(location, path)
        await self._connectors[deployment].remove(location, path)

    def pin(self, replica: DataLocation) -> bool:
        """Keep a replica fetched to the local node from eviction until :meth:`unpin`
        (pins nest); False when it is not in the local cache, which never evicts it."""
        return self._cache is not None and self._cache.pin(key(replica.location, replica.path))

    def unpin(self, replica: DataLocation) -> None:
        """Undo one :meth:`pin`."""
        if self._cache is not None:
            self._cache.unpin(key(replica.location, replica.path))

    def _record_outcomes(
        self,
        jobs: list[Job],
        source: DataLocation,
        writable: bool,
        completed: bool,
    ) -> None:
        """Publish each destination's outcome: available replica, or invalidated.

        ``completed`` is False when the transfer was interrupted (cancelled, or an
        unexpected error): then no destination counts as written. Only a replica complete
        and verified reaches the catalog.
        """
        failure: StreamFlowDataError | None = None
        for job in jobs:
            succeeded = job.written(completed) is not None
            try:
                if succeeded:
                    self._register_copy(job, source, writable)
                else:
                    self._invalidate(job.location, job.path)  # and what was registered below
            except StreamFlowDataError as exc:  # the catalog failed: settle the others first
                failure = failure or exc
            finally:
                if job.replica is not None:
                    job.replica.mark_available()
                if self._cache is not None and job.reservation is not None:
                    if succeeded:
                        self._cache.admit(job.reservation)
                    else:
                        self._cache.cancel(job.reservation)
                self._claims.release([job], succeeded)
        if failure is not None:
            raise failure

    def _register_copy(self, job: Job, source: DataLocation, writable: bool) -> None:
        """Record a complete, verified copy in the catalog."""
        if self._log is not None and job.replica is not None:
            self._log.registered(job.replica)
            if not writable:
                self._log.related(source, job.replica)

    def _check_open(self) -> None:
        if self._closed:
            raise StreamFlowDataError("the data manager is closed")

    async def close(self) -> None:
        """Wait for transfers in flight, then close every connector.

        Further transfers raise; queries keep working. To stop transfers rather than wait
        for them, cancel their tasks first.
        """
        if self._closed:
            return
        self._closed = True
        await self._claims.wait_all()
        try:
            if self._catalog is not None:
                await self._catalog.close(self.statistics)
        finally:
            # At once: each may wait for processes and connections to end.
            await asyncio.gather(
                *(connector.close() for connector in self._connectors.values()),
                return_exceptions=True,
            )
