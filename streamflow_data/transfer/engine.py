"""Copying one source path to many destinations: the coordinator of a transfer.

A transfer plans the source tree, creates its directories at every destination, copies
its files (several at once, each through :class:`~streamflow_data.transfer.filecopy.FileCopy`),
recreates its links, then gives directories their modes and times. Each destination
succeeds or fails on its own: a failure is recorded in its
:class:`~streamflow_data.transfer.context.DestinationState` and the others go on; the
transfer returns each one's error. Memory is bounded by the engine's :class:`BlockPool`,
shared by all the transfers of an engine.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterator, Sequence

from streamflow_data.config import TransferSettings
from streamflow_data.connectors.base import FileKind, FileStat, LinkItem, MetadataItem, WalkEntry
from streamflow_data.errors import (
    ConnectorError,
    PathNotFoundError,
    StreamFlowDataError,
    UnsafePathError,
)
from streamflow_data.model import ExecutionLocation, is_temporary_of, temporary_name
from streamflow_data.transfer.batch import BatchCopy, SmallFile, batches
from streamflow_data.transfer.blocks import BlockPool
from streamflow_data.transfer.context import (
    CopyTarget,
    Destination,
    Endpoint,
    RunContext,
)
from streamflow_data.transfer.events import TransferListener
from streamflow_data.transfer.filecopy import FileCopy
from streamflow_data.transfer.journal import NullJournal, RunJournal
from streamflow_data.transfer.plan import (
    TransferPlan,
    join,
    link_targets,
    plan_transfer,
)
from streamflow_data.transfer.progress import ProgressTracker
from streamflow_data.transfer.state import ChunkState, FileState, StateManager
from streamflow_data.transfer.stats import Statistics

__all__ = ["CopyTarget", "Endpoint", "TransferEngine"]

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
        self.statistics = Statistics()

    async def run(
        self,
        source: Endpoint,
        src_path: str,
        targets: Sequence[CopyTarget],
        journal: RunJournal | None = None,
        listeners: Sequence[TransferListener] = (),
    ) -> list[Exception | None]:
        """Copy ``src_path`` to every target, each at its own ``path``, reading the source
        once for all of them; why each target failed, in order (None where it did not).
        ``listeners`` receive this run's progress, after the engine's own.

        A failed target is left with nothing of the transfer at its ``path``. Errors that
        concern the source path itself (it is missing, unreadable) are raised, before
        anything is written. With a ``journal``, what an earlier run of the same transfer
        finished is checked and skipped, and partly written files continue where they
        stopped.
        """
        journal = journal or NullJournal()
        destinations = [Destination.of(target, index) for index, target in enumerate(targets)]
        named = ", ".join(f"{d.location}:{d.path}" for d in destinations)
        outcome = "cancelled"
        try:
            listening = [*self.listeners, *listeners]
            await self._run(source, src_path, destinations, journal, named, listening)
            outcome = "failed" if any(d.error for d in destinations) else "done"
        except Exception:
            outcome = "failed"  # planning included: the journal never says "running" for ever
            raise
        finally:
            await asyncio.shield(journal.finish(outcome))
            logger.info("transfer %s:%s -> %s: %s", source.location, src_path, named, outcome)
            self.statistics.buffer_peak_bytes = self.pool.peak_in_use * self.pool.size
            self.statistics.buffer_bytes_in_use = self.pool.in_use * self.pool.size
        return [destination.error for destination in destinations]

    async def _run(
        self,
        source: Endpoint,
        src_path: str,
        destinations: Sequence[Destination],
        journal: RunJournal,
        targets: str,
        listeners: Sequence[TransferListener],
    ) -> None:
        # When no destination keeps links, the files they point to are planned as files, so
        # that the totals, the journal and a rerun count them.
        plan = await plan_transfer(
            source.connector,
            source.location,
            src_path,
            keep_setid=self.settings.keep_setid,
            links=any(d.connector.capabilities.symlinks for d in destinations),
        )
        _warn_skipped(source.location, src_path, plan.unlinked, destinations[0].location)
        settings = self.settings
        prior = await journal.start(plan.files, settings.chunk_size, settings.block_size)
        on_change = journal.file_state if journal.resumable else None
        files: StateManager[tuple[str, int], FileState] = StateManager(FileState, on_change)
        chunks: StateManager[tuple[str, int, int], ChunkState] = StateManager(ChunkState)
        progress = ProgressTracker(
            listeners,
            source.location,
            src_path,
            [(d.location, d.path) for d in destinations],
            len(plan.files),
            plan.total_bytes,
            files,
            chunks,
        )
        progress.transfer_id = journal.transfer_id
        context = RunContext(
            source=source,
            settings=self.settings,
            pool=self.pool,
            stats=self.statistics,
            progress=progress,
            chunk_slots=asyncio.Semaphore(self.settings.max_concurrent_chunks),
            batch_slots=asyncio.Semaphore(
                min(
                    settings.max_concurrent_files,
                    source.connector.batch_streams(source.location)
                    or settings.max_concurrent_files,
                )
            ),
            root_is_directory=plan.root.kind is FileKind.DIRECTORY,
            files=files,
            chunks=chunks,
            journal=journal,
            prior=prior,
        )
        logger.info(
            "transfer %s:%s -> %s: %d file(s), %d bytes",
            source.location,
            src_path,
            targets,
            len(plan.files),
            plan.total_bytes,
        )
        try:
            await _TransferRun(context, src_path, destinations, plan).execute()
        finally:
            for index, kind in enumerate(progress.verifications):
                journal.checked(index, kind)


_VALID = frozenset({FileState.VALID})
_LANDING = frozenset({FileState.TRANSFERRING, FileState.DONE})
"""States of a file whose whole copy may have been published as its run stopped."""


def _warn_skipped(
    source: ExecutionLocation,
    path: str,
    skipped: list[tuple[WalkEntry, str]],
    destination: ExecutionLocation,
) -> None:
    for entry, target in skipped:
        logger.warning(
            "%s:%s is a link to %s: %s stores no links, so it is skipped",
            source,
            join(path, entry.relpath),
            target,
            destination,
        )


class _TransferRun:
    """The state of one transfer while it runs."""

    def __init__(
        self,
        context: RunContext,
        src_path: str,
        destinations: Sequence[Destination],
        plan: TransferPlan,
    ) -> None:
        self.context = context
        self.src_path = src_path
        self.destinations = destinations
        self.plan = plan
        self.skipped: set[tuple[str, int]] = set()
        """(relpath, destination index) of files an earlier run left valid."""
        self.listed: dict[int, dict[str, FileStat]] = {}
        """What an existing destination tree held, by destination index, when
        ``_prepare`` walked it for links in the way: ``_check_prior`` reads it instead of
        walking the tree again."""
        for entry in plan.files:
            for destination in destinations:
                context.files[(entry.relpath, destination.index)] = FileState.READY

    async def execute(self) -> None:
        self.context.progress.start()
        try:
            await self._each_destination(self._prepare)
            await self._each_destination(self._check_prior)
            await self._copy_files()
            if self.context.settings.checksum == "sha256":
                await self._verify_sha256()
            await self._each_destination(self._make_links)
            await self._each_destination(self._finish)
        except BaseException as exc:
            self._cancel_chunks()
            keep = isinstance(exc, asyncio.CancelledError) and self.context.journal.resumable
            # A cancelled run keeps what it wrote for the next run to resume: staging trees,
            # and the finished files of destinations written in place (object stores),
            # which the journal records as valid.
            await self._clean_up([] if keep else self.destinations)
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
                destination.fail(exc)

        async with asyncio.TaskGroup() as group:
            for destination in self._active():
                group.create_task(attempt(destination))

    # -- steps -----------------------------------------------------------------------------

    async def _prepare(self, destination: Destination) -> None:
        """Admit the transfer's size, then create the tree's directories: under a hidden
        staging name when the storage can rename it into place at the end, else at the
        destination path itself."""
        if destination.admit is not None:
            await destination.admit(self.plan.total_bytes)
        if self.plan.root.kind is not FileKind.DIRECTORY:
            return
        connector, location = destination.connector, destination.location
        exists = await connector.exists(location, destination.path)
        if not exists and connector.capabilities.atomic_directories:
            earlier = self.context.prior.roots.get(destination.index)
            if not (
                earlier is not None
                and is_temporary_of(earlier, destination.path)
                and await connector.exists(location, earlier)
            ):
                earlier = None
            destination.state.root = earlier or temporary_name(destination.path)
            destination.state.staged = True
        destination.state.created_root = not exists
        if exists and connector.capabilities.symlinks and self.plan.directories:
            await self._refuse_links_in_the_way(destination)
        self.context.journal.root(destination.index, destination.root, destination.staged)
        directories = [destination.target(entry.relpath) for entry in self.plan.directories]
        await connector.make_directories(location, [destination.root, *directories])

    async def _refuse_links_in_the_way(self, destination: Destination) -> None:
        """Fail ``destination`` if a symbolic link in its existing tree stands where the
        copy puts a directory: what is written below it would land where it points (GNU
        ``cp`` refuses the same)."""
        connector, location = destination.connector, destination.location
        listed = self.listed[destination.index] = {
            entry.relpath: entry.stat async for entry in connector.walk(location, destination.path)
        }
        for entry in self.plan.directories:
            there = listed.get(entry.relpath)
            if there is not None and there.kind is FileKind.SYMLINK:
                raise UnsafePathError(
                    location,
                    join(destination.path, entry.relpath),
                    "a symbolic link stands where the copy puts a directory",
                )

    async def _check_prior(self, destination: Destination) -> None:
        """Skip the files an earlier run made valid here, if they are still there, intact
        by size and time; discard partial files whose source changed since.

        Where each file is published whole at its path (not staged), so are the files an
        interrupted run was writing or committing: one there with the source's size and
        time is the copy, whose commit landed as the run stopped."""
        prior, index = self.context.prior, destination.index
        connector, location = destination.connector, destination.location
        for relpath, stale_index, token in prior.stale:
            if stale_index == index:
                await _discard(destination, relpath, token)
        landed = _VALID if destination.staged else _VALID | _LANDING
        valid = [
            relpath
            for (relpath, at), copy in prior.files.items()
            if at == index and copy.state in landed
        ]
        if not valid:
            return
        found: dict[str, FileStat] = {}
        try:
            if index in self.listed:
                found = self.listed[index]
            elif self.plan.root.kind is FileKind.DIRECTORY:
                async for entry in connector.walk(location, destination.root):
                    found[entry.relpath] = entry.stat
            else:
                found[""] = await connector.stat(location, destination.path)
        except PathNotFoundError:
            return
        planned = {entry.relpath: entry.stat for entry in self.plan.files}
        check_time = connector.capabilities.mtimes
        for relpath in valid:
            there, source = found.get(relpath), planned[relpath]
            if (
                there is not None
                and there.kind is FileKind.FILE
                and there.size == source.size
                and (not check_time or there.mtime_ns == source.mtime_ns)
            ):
                self.skipped.add((relpath, index))
                self.context.files[(relpath, index)] = FileState.VALID
                self.context.progress.skip(index, 1, source.size)

    async def _copy_files(self) -> None:
        """Copy files several at a time: batches of small files, and large files one by one.

        A worker that has read a batch goes on to the next while the batch is written
        (in ``writes``), so the source is not idle while a destination writes."""
        pending = iter(self._work())

        async def worker(writes: asyncio.TaskGroup) -> None:
            for work, needed in pending:
                active = [d for d in self._active() if d.index in needed]
                if not active:
                    if not self._active():
                        return
                elif isinstance(work, BatchCopy):
                    await work.run(active, writes)
                else:
                    await work.run(active)

        workers = min(self.context.settings.max_concurrent_files, len(self.plan.files))
        async with asyncio.TaskGroup() as writes, asyncio.TaskGroup() as group:
            for _ in range(workers):
                group.create_task(worker(writes))

    def _work(self) -> Iterator[tuple[BatchCopy | FileCopy, frozenset[int]]]:
        """Each file or batch of small files, with the destinations that need it."""
        settings = self.context.settings
        everywhere = frozenset(d.index for d in self.destinations)
        small: dict[frozenset[int], list[SmallFile]] = {}
        for entry in self.plan.files:
            needed = everywhere
            if self.skipped:
                needed = frozenset(i for i in everywhere if (entry.relpath, i) not in self.skipped)
                if not needed:
                    continue
            source = join(self.src_path, entry.relpath)
            if entry.stat.size <= settings.block_size and self.context.root_is_directory:
                small.setdefault(needed, []).append(SmallFile(entry.relpath, source, entry.stat))
            else:
                yield FileCopy(self.context, entry.relpath, source, entry.stat), needed
        for needed, group in small.items():
            workers = settings.max_concurrent_files
            for files in batches(group, settings.max_batch_files, settings.block_size, workers):
                yield BatchCopy(self.context, files), needed

    def _copied(self, destination: Destination) -> list[WalkEntry]:
        """The files this run wrote to ``destination`` (not those an earlier run left)."""
        return [e for e in self.plan.files if (e.relpath, destination.index) not in self.skipped]

    async def _verify_sha256(self) -> None:
        """Read every copied file back, at the source and at each destination, and
        compare their SHA-256 (see :mod:`streamflow_data.transfer.verify`)."""
        from streamflow_data.transfer.verify import Sha256Verification  # only when asked for

        verification = Sha256Verification(self.context, self.src_path)
        copied = {destination.index: self._copied(destination) for destination in self._active()}
        needed = {entry.relpath: entry for files in copied.values() for entry in files}
        try:
            await verification.hash_sources(needed.values())
        except Exception as exc:  # the source cannot be read back: no copy is verified
            self.context.stats.error(exc)
            for destination in self._active():
                destination.fail(exc)
            return

        async def check(destination: Destination) -> None:
            await verification.check(destination, copied[destination.index])
            self.context.progress.verified_end_to_end(destination.index)

        await self._each_destination(check)

    async def _make_links(self, destination: Destination) -> None:
        if not self.plan.links:
            return
        if not destination.connector.capabilities.symlinks:
            await self._copy_link_targets(destination)
            return
        links = []
        timed = destination.connector.capabilities.mtimes
        for entry in self.plan.links:
            assert entry.stat.target is not None
            mtime_ns = entry.stat.mtime_ns if timed else None
            links.append(LinkItem(entry.stat.target, destination.target(entry.relpath), mtime_ns))
        await destination.connector.make_symlinks(destination.location, links)

    async def _copy_link_targets(self, destination: Destination) -> None:
        """Storage without links (object stores) gets the file each link points to.

        Links to directories and links to nothing have no file to store: they are skipped,
        with a warning.
        """
        source = self.context.source
        keep_setid = self.context.settings.keep_setid
        found = await link_targets(
            source.connector, source.location, self.src_path, self.plan.links, keep_setid=keep_setid
        )
        _warn_skipped(source.location, self.src_path, found.skipped, destination.location)
        for entry in found.files:
            path = join(self.src_path, entry.relpath)
            await FileCopy(self.context, entry.relpath, path, entry.stat).run([destination])

    async def _finish(self, destination: Destination) -> None:
        """Give directories their source mode and time, deepest first (after their
        content), and rename a staging directory to the destination path: the tree
        appears whole."""
        items = self._directory_metadata(destination)
        staged = destination.root if destination.staged else None
        if not items and staged is None:
            return
        connector = destination.connector
        await connector.finish_tree(destination.location, items, staged, destination.path)
        if staged is not None:
            destination.state.root, destination.state.staged = destination.path, False
            self.context.journal.root(destination.index, destination.path, False)

    def _directory_metadata(self, destination: Destination) -> list[MetadataItem]:
        """The modes and times of the tree's directories at ``destination``, deepest
        first, as far as it keeps them."""
        if self.plan.root.kind is not FileKind.DIRECTORY:
            return []
        capabilities = destination.connector.capabilities
        if not (capabilities.permissions or capabilities.mtimes):
            return []
        entries = [*self.plan.directories[::-1], WalkEntry("", self.plan.root)]
        return [
            MetadataItem(
                destination.target(entry.relpath),
                mode=entry.stat.mode if capabilities.permissions else None,
                mtime_ns=entry.stat.mtime_ns if capabilities.mtimes else None,
            )
            for entry in entries
        ]

    def _cancel_chunks(self) -> None:
        chunks = self.context.chunks
        for key in list(chunks):
            if chunks[key] in (ChunkState.PENDING, ChunkState.RUNNING):
                chunks[key] = ChunkState.CANCELLED

    async def _clean_up(self, destinations: Sequence[Destination]) -> None:
        """Remove what a failed or cancelled transfer created at each destination."""
        for destination in destinations:
            if destination.state.created_root:
                try:
                    await destination.connector.remove(destination.location, destination.root)
                except ConnectorError:
                    logger.warning(
                        "could not remove %s after a failed transfer",
                        f"{destination.location}:{destination.path}",
                        exc_info=True,
                    )


async def _discard(destination: Destination, relpath: str, token: str) -> None:
    """Remove the partial file an earlier run left for a source file that changed since."""
    connector, location = destination.connector, destination.location
    try:
        writer = await connector.resume_writer(
            location, destination.target(relpath), token, atomic=not destination.staged
        )
    except StreamFlowDataError:
        return  # already gone, or never resumable
    await writer.abort()
