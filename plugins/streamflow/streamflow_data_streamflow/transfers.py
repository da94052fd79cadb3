"""The side of the ``streamflow-data`` manager that moves data: this project's engine,
built from the manager's ``config``, serving the deployments it can reach
(:mod:`~streamflow_data_streamflow.deployments`).

Every call answers in StreamFlow's terms: its locations in, its
``WorkflowExecutionException`` out, this project's errors translated at this boundary.
The manager (:mod:`~streamflow_data_streamflow.manager`) imports this module when
StreamFlow builds it, not when StreamFlow loads the plugin: StreamFlow loads every
installed plugin at each start, whichever data manager the run uses.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar

from streamflow.core.exception import WorkflowExecutionException

from streamflow_data import (
    DefaultDataManager,
    ExecutionLocation,
    FileKind,
    PathNotFoundError,
    StreamFlowDataError,
)
from streamflow_data.sdk import parse_options
from streamflow_data_streamflow.deployments import Deployments
from streamflow_data_streamflow.options import DataManagerOptions

__all__ = ["Transfers"]

logger = logging.getLogger("streamflow.streamflow_data")

_T = TypeVar("_T")


class Transfers:
    """This project's engine behind one StreamFlow data manager (see the module)."""

    def __init__(
        self, context: Any, config: Mapping[str, Any], on_evict: Callable[[str, str], None]
    ) -> None:
        self.options = parse_options(DataManagerOptions, config, "the streamflow-data manager")
        """The validated configuration."""
        self.engine = DefaultDataManager(
            settings=self.options.transfer,
            catalog=self.options.catalog,
            cache=self.options.cache,
            on_evict=lambda location, path: on_evict(location.deployment, path),
        )
        """This project's manager, which moves every byte."""
        self._deployments = Deployments(context, self.engine)
        self._opening: asyncio.Future[DefaultDataManager] | None = None
        self._named: set[tuple[str, str]] = set()
        self._warming: set[asyncio.Task[None]] = set()

    async def open(self) -> None:
        """Open the engine (its catalog) once, for the first transfer."""
        if self._opening is None:
            self._opening = asyncio.ensure_future(self.engine.open())
        await asyncio.shield(self._opening)

    async def close(self) -> None:
        """Wait for transfers in flight, log what moved where, close the connectors."""
        for task in self._warming:
            task.cancel()
        await asyncio.gather(*self._warming, return_exceptions=True)
        await self.engine.close()
        for location, moved in self.engine.statistics.locations.items():
            logger.info(
                "streamflow-data moved %d bytes from and %d bytes to %s",
                moved.bytes_read,
                moved.bytes_written,
                location,
            )

    def warm_up(self, deployment: str, name: str) -> None:
        """StreamFlow named its location ``name`` of ``deployment`` (asking what data is
        there, as it does of a step's working directory before the step's inputs are
        copied): connect to it in the background, once, if the SSH plugin serves it, so
        that the first transfer there does not wait for the connection and login shell."""
        if (deployment, name) in self._named:
            return
        self._named.add((deployment, name))
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # asked outside a loop: nothing to connect with
            return
        try:
            ours = self._deployments.ssh_location(deployment, name)
        except StreamFlowDataError:  # the engine is closed
            return
        if ours is not None:
            task = loop.create_task(self._warm_up(ours))
            self._warming.add(task)
            task.add_done_callback(self._warming.discard)

    async def _warm_up(self, location: ExecutionLocation) -> None:
        try:
            await self.engine.connector(location).warm_up(location)
        except StreamFlowDataError as exc:  # the first transfer meets it again, and says so
            logger.debug("connecting to %s ahead of its transfers failed: %s", location, exc)

    def invalidate(self, location: Any, path: str) -> None:
        """Forget the engine's replicas of ``path`` and below on StreamFlow's ``location``
        (if the engine has served its deployment: it may have copied there)."""
        ours = self._deployments.known(location)
        if ours is not None:
            self.engine.invalidate_location(ours, path)

    async def driven(self, location: Any) -> bool:
        """Whether the engine moves data to and from StreamFlow's ``location`` (see
        :meth:`Deployments.driven`)."""
        return await _translated(self._deployments.driven(location))

    async def make_directory(self, location: Any, path: str) -> None:
        """``path`` and its missing parents made on a driven ``location``."""
        ours = self._deployments.location(location)
        await _translated(self.engine.connector(ours).mkdir(ours, path))

    async def is_dir(self, location: Any, path: str) -> bool:
        """Whether ``path`` on a driven ``location`` is a directory (or a link to one)."""
        ours = self._deployments.location(location)

        async def kind() -> FileKind | None:
            try:
                found = await self.engine.connector(ours).stat(ours, path, follow_symlinks=True)
            except PathNotFoundError:
                return None
            return found.kind

        return await _translated(kind()) is FileKind.DIRECTORY

    async def copy(
        self,
        src_location: Any,
        source: str,
        destinations: Sequence[tuple[Any, str]],
        writable: bool,
    ) -> None:
        """Copy ``source`` to each ``(location, path)`` at once, every location driven:
        the source read once for all of them."""
        ours = self._deployments.location(src_location)
        if self.engine.mapper.resolve(ours, source) is None:
            self.engine.register_path(ours, source)
        targets = [(self._deployments.location(location), path) for location, path in destinations]
        where = ", ".join(f"{path} on {location}" for location, path in destinations)
        logger.info("COPYING %s on %s to %s", source, src_location, where)
        started = time.monotonic()
        await _translated(self.engine.transfer_to(ours, source, targets, writable))
        logger.info("COMPLETED copy of %s in %.3f s", source, time.monotonic() - started)


async def _translated(work: Awaitable[_T]) -> _T:
    """Await ``work``; this project's errors become StreamFlow's."""
    try:
        return await work
    except StreamFlowDataError as exc:
        raise WorkflowExecutionException(str(exc)) from exc
