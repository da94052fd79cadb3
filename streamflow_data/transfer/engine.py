"""Copying one source path to many destinations, reading the source once.

Each destination succeeds or fails on its own: a failure is recorded on its
:class:`Destination` and the others go on. Every block read from the source is written to
all destinations still in the transfer before the next block is read, so memory in flight
is one block per file whatever the number of destinations, and the source is read once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import posixpath
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import ParamSpec, TypeVar

from streamflow_data.config import TransferSettings
from streamflow_data.connectors.base import Connector, FileKind, FileStat, WalkEntry, Writer
from streamflow_data.errors import ConnectorError, PathNotFoundError
from streamflow_data.model import ExecutionLocation
from streamflow_data.transfer.events import TransferListener, TransferProgress
from streamflow_data.transfer.plan import TransferPlan, join, plan_transfer

__all__ = ["Destination", "Endpoint", "TransferEngine"]

logger = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A connector and one of its locations."""

    connector: Connector
    location: ExecutionLocation


@dataclass(slots=True, eq=False)
class Destination:
    """One destination of a transfer and how it fared."""

    connector: Connector
    location: ExecutionLocation
    server_copy: bool = False
    """Copy file by file within the location instead of streaming through us."""
    error: Exception | None = None
    """Why this destination failed, once it has."""
    created_root: bool = False
    """The transfer created the destination directory, so a failure removes it."""


class TransferEngine:
    """Runs transfers with the given settings, reporting progress to listeners."""

    def __init__(
        self, settings: TransferSettings, listeners: Sequence[TransferListener] = ()
    ) -> None:
        self.settings = settings
        self.listeners = list(listeners)

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
        plan = await plan_transfer(source.connector, source.location, src_path)
        await _Run(self, source, src_path, destinations, dst_path, plan).execute()


class _Run:
    """The state of one transfer while it runs."""

    def __init__(
        self,
        engine: TransferEngine,
        source: Endpoint,
        src_path: str,
        destinations: Sequence[Destination],
        dst_path: str,
        plan: TransferPlan,
    ) -> None:
        self.engine = engine
        self.block_size = engine.settings.block_size
        self.source = source
        self.src_path = src_path
        self.destinations = destinations
        self.dst_path = dst_path
        self.plan = plan
        self.started = time.monotonic()
        self.files_done = 0
        self.bytes_done = 0
        self.bytes_total = plan.total_bytes

    async def execute(self) -> None:
        self._report(finished=False)
        try:
            await self._each_destination(self._prepare)
            await self._copy_files()
            await self._each_destination(self._make_links)
            await self._each_destination(self._finish_directories)
        except BaseException:
            await self._clean_up(self.destinations)
            raise
        else:
            await self._clean_up([d for d in self.destinations if d.error is not None])
        finally:
            self._report(finished=True)

    # -- helpers ---------------------------------------------------------------------------

    def _active(self) -> list[Destination]:
        return [d for d in self.destinations if d.error is None]

    async def _attempt(
        self,
        destination: Destination,
        operation: Callable[P, Awaitable[T]],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T | None:
        """Run one destination's operation; a failure ends that destination, not the run."""
        if destination.error is not None:
            return None
        try:
            return await operation(*args, **kwargs)
        except Exception as exc:
            if destination.error is None:
                destination.error = exc
            return None

    async def _each_destination(self, operation: Callable[[Destination], Awaitable[None]]) -> None:
        async with asyncio.TaskGroup() as group:
            for destination in self._active():
                group.create_task(self._attempt(destination, operation, destination))

    async def _in_parent(
        self,
        destination: Destination,
        path: str,
        operation: Callable[[Connector, ExecutionLocation], Awaitable[T]],
    ) -> T:
        """Apply ``operation`` to the destination to write ``path`` there.

        If the parent directory of a file root is missing, create it and try again (the
        directories of a tree are created beforehand).
        """
        connector, location = destination.connector, destination.location
        try:
            return await operation(connector, location)
        except PathNotFoundError:
            if self.plan.root.kind is FileKind.DIRECTORY:
                raise
            await connector.mkdir(location, posixpath.dirname(path))
            return await operation(connector, location)

    def _report(self, finished: bool) -> None:
        progress = TransferProgress(
            source=self.source.location,
            src_path=self.src_path,
            destinations=tuple(d.location for d in self.destinations),
            dst_path=self.dst_path,
            files_total=len(self.plan.files),
            files_done=self.files_done,
            bytes_total=self.bytes_total,
            bytes_done=self.bytes_done,
            elapsed=time.monotonic() - self.started,
            finished=finished,
        )
        for listener in self.engine.listeners:
            try:
                listener(progress)
            except Exception:
                logger.exception("transfer listener %r failed", listener)

    # -- steps -----------------------------------------------------------------------------

    async def _prepare(self, destination: Destination) -> None:
        if self.plan.root.kind is not FileKind.DIRECTORY:
            return
        connector, location = destination.connector, destination.location
        destination.created_root = not await connector.exists(location, self.dst_path)
        await connector.mkdir(location, self.dst_path)
        for entry in self.plan.directories:
            await connector.mkdir(location, join(self.dst_path, entry.relpath))

    async def _copy_files(self) -> None:
        pending = iter(self.plan.files)

        async def worker() -> None:
            for entry in pending:
                if not self._active():
                    return
                await self._copy_file(entry)

        workers = min(self.engine.settings.max_concurrent_files, len(self.plan.files))
        async with asyncio.TaskGroup() as group:
            for _ in range(workers):
                group.create_task(worker())

    async def _copy_file(self, entry: WalkEntry) -> None:
        src_file = join(self.src_path, entry.relpath)
        dst_file = join(self.dst_path, entry.relpath)
        mode, mtime_ns = entry.stat.mode, entry.stat.mtime_ns
        active = self._active()
        streamed = [d for d in active if not d.server_copy]

        def server_copy(connector: Connector, location: ExecutionLocation) -> Awaitable[None]:
            return connector.copy(location, src_file, dst_file, mode=mode, mtime_ns=mtime_ns)

        async with asyncio.TaskGroup() as group:
            for destination in active:
                if destination.server_copy:
                    group.create_task(
                        self._attempt(
                            destination, self._in_parent, destination, dst_file, server_copy
                        )
                    )
            if streamed:
                group.create_task(self._stream(src_file, dst_file, entry.stat, streamed))
        self.files_done += 1
        self.bytes_done += entry.stat.size
        self._report(finished=False)

    async def _stream(
        self, src_file: str, dst_file: str, stat: FileStat, destinations: list[Destination]
    ) -> None:
        """Read the file once, write it to every destination; source errors fail them all."""
        try:
            if stat.size <= self.block_size:
                await self._stream_small(src_file, dst_file, stat, destinations)
            else:
                await self._stream_blocks(src_file, dst_file, stat, destinations)
        except Exception as exc:
            for destination in destinations:
                if destination.error is None:
                    destination.error = exc

    async def _stream_small(
        self, src_file: str, dst_file: str, stat: FileStat, destinations: list[Destination]
    ) -> None:
        data = await self.source.connector.read_file(self.source.location, src_file)
        self._check_size(src_file, stat, len(data))

        def write(connector: Connector, location: ExecutionLocation) -> Awaitable[None]:
            return connector.write_file(
                location, dst_file, data, mode=stat.mode, mtime_ns=stat.mtime_ns
            )

        async with asyncio.TaskGroup() as group:
            for destination in destinations:
                group.create_task(
                    self._attempt(destination, self._in_parent, destination, dst_file, write)
                )

    async def _stream_blocks(
        self, src_file: str, dst_file: str, stat: FileStat, destinations: list[Destination]
    ) -> None:
        async with contextlib.AsyncExitStack() as stack:
            reader = await self.source.connector.open_reader(self.source.location, src_file)
            stack.push_async_callback(reader.close)

            def open_writer(connector: Connector, location: ExecutionLocation) -> Awaitable[Writer]:
                return connector.open_writer(
                    location, dst_file, mode=stat.mode, mtime_ns=stat.mtime_ns
                )

            writers: list[tuple[Destination, Writer]] = []
            for destination in destinations:
                writer = await self._attempt(
                    destination, self._in_parent, destination, dst_file, open_writer
                )
                if writer is not None:
                    stack.push_async_callback(writer.abort)
                    writers.append((destination, writer))
            offset = 0
            while offset < stat.size and any(d.error is None for d, _ in writers):
                data = await reader.read(offset, min(self.block_size, stat.size - offset))
                if not data:
                    self._check_size(src_file, stat, offset)
                async with asyncio.TaskGroup() as group:
                    for destination, writer in writers:
                        group.create_task(self._attempt(destination, writer.write, offset, data))
                offset += len(data)
            async with asyncio.TaskGroup() as group:
                for destination, writer in writers:
                    group.create_task(self._attempt(destination, writer.commit))

    def _check_size(self, src_file: str, stat: FileStat, size: int) -> None:
        if size != stat.size:
            raise ConnectorError(
                self.source.location,
                src_file,
                f"the file changed during the transfer ({stat.size} bytes planned, {size} read)",
            )

    async def _make_links(self, destination: Destination) -> None:
        connector, location = destination.connector, destination.location
        for entry in self.plan.links:
            assert entry.stat.target is not None
            await connector.symlink(location, entry.stat.target, join(self.dst_path, entry.relpath))

    async def _finish_directories(self, destination: Destination) -> None:
        """Give directories their source mode and time, deepest first (after their content)."""
        if self.plan.root.kind is not FileKind.DIRECTORY:
            return
        capabilities = destination.connector.capabilities
        if not (capabilities.permissions or capabilities.mtimes):
            return
        entries = [*self.plan.directories[::-1], WalkEntry("", self.plan.root)]
        for entry in entries:
            await destination.connector.set_metadata(
                destination.location,
                join(self.dst_path, entry.relpath),
                mode=entry.stat.mode if capabilities.permissions else None,
                mtime_ns=entry.stat.mtime_ns if capabilities.mtimes else None,
            )

    async def _clean_up(self, destinations: Sequence[Destination]) -> None:
        """Remove what a failed or cancelled transfer created at each destination."""
        for destination in destinations:
            if destination.created_root:
                try:
                    await destination.connector.remove(destination.location, self.dst_path)
                except ConnectorError:
                    logger.warning(
                        "could not remove %s after a failed transfer",
                        f"{destination.location}:{self.dst_path}",
                        exc_info=True,
                    )
