"""Copying one source path to many destinations: the coordinator of a transfer.

A transfer plans the source tree, creates its directories at every destination, copies
its files (several at once, each through :class:`~streamflow_data.transfer.filecopy.FileCopy`),
recreates its links, then gives directories their modes and times. Each destination
succeeds or fails on its own: a failure is recorded on its :class:`Destination` and the
others go on. Memory is bounded by the engine's :class:`BlockPool`, shared by all the
transfers of an engine.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterator, Sequence

from streamflow_data.config import TransferSettings
from streamflow_data.connectors.base import FileKind, LinkItem, MetadataItem, WalkEntry
from streamflow_data.errors import ConnectorError
from streamflow_data.model import temporary_name
from streamflow_data.transfer.batch import BatchCopy, SmallFile, batches
from streamflow_data.transfer.blocks import BlockPool
from streamflow_data.transfer.events import TransferListener
from streamflow_data.transfer.filecopy import (
    Destination,
    Endpoint,
    FileCopy,
    RunContext,
    SessionLimits,
)
from streamflow_data.transfer.plan import TransferPlan, join, plan_transfer
from streamflow_data.transfer.progress import ProgressTracker
from streamflow_data.transfer.state import ChunkState, FileState, StateManager
from streamflow_data.transfer.stats import Statistics

__all__ = ["Destination", "Endpoint", "TransferEngine"]

logger = logging.getLogger(__name__)


class TransferEngine:
    """Runs transfers with the given settings, within one memory bound.

    ``pool`` holds every block of file data of every transfer; ``statistics`` accumulates
    what every transfer moved and every error it met.
    """

    def __init__(
        self, settings: TransferSettings, listeners: Sequence[TransferListener] = ()
    ) -> None:
        self.settings = settings
        self.listeners = list(listeners)
        self.pool = BlockPool(settings.block_count, settings.block_size)
        self.sessions = SessionLimits(settings.max_sessions_per_location)
        self.statistics = Statistics()

    async def run(
        self,
        source: Endpoint,
        src_path: str,
        destinations: Sequence[Destination],
        dst_path: str,
    ) -> None:
        """Copy ``src_path`` to ``dst_path`` on every destination.

        Errors of a destination are recorded in its ``error`` and leave nothing of the
        transfer at its ``dst_path``. Errors that concern the source path itself (it is
        missing, unreadable) are raised, before anything is written.
        """
        for index, destination in enumerate(destinations):
            destination.index = index
            destination.root = dst_path
        plan = await plan_transfer(source.connector, source.location, src_path)
        files: StateManager[tuple[str, int], FileState] = StateManager(FileState)
        chunks: StateManager[tuple[str, int, int], ChunkState] = StateManager(ChunkState)
        progress = ProgressTracker(
            self.listeners,
            source.location,
            src_path,
            [d.location for d in destinations],
            dst_path,
            len(plan.files),
            plan.total_bytes,
            files,
            chunks,
        )
        context = RunContext(
            source=source,
            settings=self.settings,
            pool=self.pool,
            sessions=self.sessions,
            stats=self.statistics,
            progress=progress,
            chunk_slots=asyncio.Semaphore(self.settings.max_concurrent_chunks),
            root_is_directory=plan.root.kind is FileKind.DIRECTORY,
            files=files,
            chunks=chunks,
        )
        try:
            await _Run(context, src_path, destinations, dst_path, plan).execute()
        finally:
            self.statistics.buffer_peak_bytes = self.pool.peak_in_use * self.pool.size
            self.statistics.buffer_bytes_in_use = self.pool.in_use * self.pool.size


class _Run:
    """The state of one transfer while it runs."""

    def __init__(
        self,
        context: RunContext,
        src_path: str,
        destinations: Sequence[Destination],
        dst_path: str,
        plan: TransferPlan,
    ) -> None:
        self.context = context
        self.src_path = src_path
        self.destinations = destinations
        self.dst_path = dst_path
        self.plan = plan
        for entry in plan.files:
            for destination in destinations:
                context.files[(entry.relpath, destination.index)] = FileState.READY

    async def execute(self) -> None:
        self.context.progress.start()
        try:
            await self._each_destination(self._prepare)
            await self._copy_files()
            await self._each_destination(self._make_links)
            await self._each_destination(self._finish_directories)
            await self._each_destination(self._publish)
        except BaseException:
            self._cancel_chunks()
            await self._clean_up(self.destinations)
            raise
        else:
            await self._clean_up([d for d in self.destinations if d.error is not None])
        finally:
            self.context.progress.finish()

    def _active(self) -> list[Destination]:
        return [d for d in self.destinations if d.error is None]

    async def _each_destination(self, operation: Callable[[Destination], Awaitable[None]]) -> None:
        async def attempt(destination: Destination) -> None:
            try:
                await operation(destination)
            except Exception as exc:
                self.context.stats.error(exc)
                if destination.error is None:
                    destination.error = exc

        async with asyncio.TaskGroup() as group:
            for destination in self._active():
                group.create_task(attempt(destination))

    # -- steps -----------------------------------------------------------------------------

    async def _prepare(self, destination: Destination) -> None:
        """Create the tree's directories: under a hidden staging name when the storage can
        rename it into place at the end, else at the destination path itself."""
        if self.plan.root.kind is not FileKind.DIRECTORY:
            return
        connector, location = destination.connector, destination.location
        exists = await connector.exists(location, self.dst_path)
        if not exists and connector.capabilities.atomic_directories:
            destination.root = temporary_name(self.dst_path)
            destination.staged = True
        destination.created_root = not exists
        directories = [destination.target(entry.relpath) for entry in self.plan.directories]
        await connector.make_directories(location, [destination.root, *directories])

    async def _copy_files(self) -> None:
        """Copy files several at a time: batches of small files, and large files one by one."""
        pending = iter(self._work())

        async def worker() -> None:
            for work in pending:
                active = self._active()
                if not active:
                    return
                await work.run(active)

        workers = min(self.context.settings.max_concurrent_files, len(self.plan.files))
        async with asyncio.TaskGroup() as group:
            for _ in range(workers):
                group.create_task(worker())

    def _work(self) -> Iterator[BatchCopy | FileCopy]:
        settings = self.context.settings
        small = []
        for entry in self.plan.files:
            source = join(self.src_path, entry.relpath)
            if entry.stat.size <= settings.block_size and self.context.root_is_directory:
                small.append(SmallFile(entry.relpath, source, entry.stat))
            else:
                yield FileCopy(self.context, entry.relpath, source, entry.stat)
        for files in batches(small, settings.max_batch_files, settings.block_size):
            yield BatchCopy(self.context, files)

    async def _make_links(self, destination: Destination) -> None:
        links = []
        for entry in self.plan.links:
            assert entry.stat.target is not None
            links.append(LinkItem(entry.stat.target, destination.target(entry.relpath)))
        if links:
            await destination.connector.make_symlinks(destination.location, links)

    async def _finish_directories(self, destination: Destination) -> None:
        """Give directories their source mode and time, deepest first (after their content)."""
        if self.plan.root.kind is not FileKind.DIRECTORY:
            return
        capabilities = destination.connector.capabilities
        if not (capabilities.permissions or capabilities.mtimes):
            return
        entries = [*self.plan.directories[::-1], WalkEntry("", self.plan.root)]
        items = [
            MetadataItem(
                destination.target(entry.relpath),
                mode=entry.stat.mode if capabilities.permissions else None,
                mtime_ns=entry.stat.mtime_ns if capabilities.mtimes else None,
            )
            for entry in entries
        ]
        await destination.connector.apply_metadata(destination.location, items)

    async def _publish(self, destination: Destination) -> None:
        """Rename a staging directory to the destination path: the tree appears whole."""
        if destination.staged:
            await destination.connector.rename(
                destination.location, destination.root, self.dst_path
            )
            destination.root, destination.staged = self.dst_path, False

    def _cancel_chunks(self) -> None:
        chunks = self.context.chunks
        for key in list(chunks):
            if chunks[key] in (ChunkState.PENDING, ChunkState.RUNNING):
                chunks[key] = ChunkState.CANCELLED

    async def _clean_up(self, destinations: Sequence[Destination]) -> None:
        """Remove what a failed or cancelled transfer created at each destination."""
        for destination in destinations:
            if destination.created_root:
                try:
                    await destination.connector.remove(destination.location, destination.root)
                except ConnectorError:
                    logger.warning(
                        "could not remove %s after a failed transfer",
                        f"{destination.location}:{self.dst_path}",
                        exc_info=True,
                    )
