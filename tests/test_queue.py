"""The catalog's queue of transfers, divided by workers sharing the catalog."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest

from streamflow_data import (
    CatalogSettings,
    DefaultDataManager,
    ExecutionLocation,
    StreamFlowDataError,
)
from streamflow_data.catalog.queue import QueuedTransfer, TransferQueue
from streamflow_data.manager.worker import Execute, QueueWorker
from streamflow_data.model import DataLocation

LOCAL = ExecutionLocation("local", "localhost", local=True)
FILES = 30


@contextlib.asynccontextmanager
async def workers(
    settings: CatalogSettings, count: int, meet: bool = False
) -> AsyncIterator[list[DefaultDataManager]]:
    """``count`` managers on one catalog, each with a queue worker running (with
    ``meet``, one transfer at a time, the first ones waiting until every worker has one)."""
    everyone = asyncio.Event()
    seen: set[int] = set()

    def meeting(manager: DefaultDataManager) -> Execute:
        async def execute(
            claimed: QueuedTransfer,
            source: DataLocation,
            targets: Sequence[tuple[ExecutionLocation, str]],
        ) -> None:
            seen.add(id(manager))
            if len(seen) == count:
                everyone.set()
            await asyncio.wait_for(everyone.wait(), 10)
            await manager.transfer_to(source.location, source.path, targets, claimed.writable)

        return execute

    async with contextlib.AsyncExitStack() as stack:
        managers = [
            await stack.enter_async_context(DefaultDataManager(catalog=settings))
            for _ in range(count)
        ]
        tasks = [
            asyncio.create_task(
                QueueWorker(m, concurrency=1, execute=meeting(m)).run()
                if meet
                else QueueWorker(m, concurrency=2).run()
            )
            for m in managers
        ]
        try:
            yield managers
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


async def _drained(queue: TransferQueue, total: int) -> dict[str, int]:
    for _ in range(400):  # bounded: 20 s
        counts = await queue.counts()
        if counts["done"] + counts["failed"] == total:
            return counts
        await asyncio.sleep(0.05)
    raise AssertionError(f"the queue was not drained: {await queue.counts()}")


async def test_three_workers_drain_a_queue_each_transfer_once(
    tmp_path: Path, catalog_path: str
) -> None:
    sources = tmp_path / "src"
    await asyncio.to_thread(sources.mkdir)
    for number in range(FILES):
        await asyncio.to_thread((sources / f"{number}").write_bytes, bytes([number]) * 5000)
    settings = CatalogSettings(path=catalog_path, follow_interval=0.05)
    async with DefaultDataManager(catalog=settings) as submitter:
        ids = []
        for number in range(FILES):
            submitter.register_path(LOCAL, str(sources / f"{number}"))
        await submitter.flush()
        assert submitter.catalog is not None
        queue = submitter.catalog.queue
        for number in range(FILES):
            request = QueuedTransfer.of(
                (LOCAL, str(sources / f"{number}")),
                [(LOCAL, str(tmp_path / "dst" / f"{number}"))],
                writable=True,
            )
            ids.append(await queue.submit(request))
        async with workers(settings, 3, meet=True):
            counts = await _drained(queue, FILES)
        assert counts == {"queued": 0, "running": 0, "done": FILES, "failed": 0, "cancelled": 0}
        rows = [await queue.get(number) for number in ids]
        assert {row.attempts for row in rows} == {1}  # nobody died: each claimed once
        assert len({row.owner for row in rows}) == 3  # the work was divided
        for number in range(FILES):
            data = await asyncio.to_thread((tmp_path / "dst" / f"{number}").read_bytes)
            assert data == bytes([number]) * 5000
        await asyncio.sleep(0.2)  # the submitter's follower hears of the copies
        assert submitter.get_data_locations(str(tmp_path / "dst" / "7"))


async def test_an_idle_worker_woken_claims_what_was_submitted_at_once(
    tmp_path: Path, catalog_path: str
) -> None:
    """A worker that found the queue empty looks again after its delay (here a minute),
    unless it is woken, as a service wakes its own when a transfer is submitted to it."""
    source = tmp_path / "src"
    await asyncio.to_thread(source.write_bytes, b"x" * 5000)
    async with DefaultDataManager(catalog=catalog_path) as manager:
        assert manager.catalog is not None
        queue = manager.catalog.queue
        manager.register_path(LOCAL, str(source))
        await manager.flush()
        worker = QueueWorker(manager, concurrency=1, poll=60)
        running = asyncio.create_task(worker.run())
        try:
            await asyncio.sleep(0.2)  # it has looked once, found nothing, and waits
            await queue.submit(
                QueuedTransfer.of((LOCAL, str(source)), [(LOCAL, str(tmp_path / "dst"))])
            )
            worker.wake()
            assert (await _drained(queue, 1))["done"] == 1
        finally:
            running.cancel()
            await asyncio.gather(running, return_exceptions=True)
    assert await asyncio.to_thread((tmp_path / "dst").read_bytes) == b"x" * 5000


async def test_a_transfer_of_an_unknown_source_fails_with_the_reason(catalog_path: str) -> None:
    settings = CatalogSettings(path=catalog_path, follow_interval=0.05)
    async with workers(settings, 1) as [manager]:
        assert manager.catalog is not None
        queue = manager.catalog.queue
        number = await queue.submit(
            QueuedTransfer.of((LOCAL, "/never/registered"), [(LOCAL, "/tmp/x")])
        )
        await _drained(queue, 1)
        row = await queue.get(number)
    assert row.state == "failed" and row.error is not None
    assert "no valid replica of '/never/registered'" in row.error


async def test_a_queued_transfer_is_cancelled_before_anyone_claims_it(catalog_path: str) -> None:
    async with DefaultDataManager(catalog=catalog_path) as manager:
        assert manager.catalog is not None
        queue = manager.catalog.queue
        number = await queue.submit(QueuedTransfer.of((LOCAL, "/a"), [(LOCAL, "/b")]))
        assert (await queue.cancel(number)).state == "cancelled"
        assert await queue.claim("someone") is None


async def test_a_dead_workers_transfer_is_queued_again_after_its_heartbeat_stops(
    catalog_path: str,
) -> None:
    settings = CatalogSettings(path=catalog_path, stale_lock_after=1.0)
    async with DefaultDataManager(catalog=settings) as manager:
        assert manager.catalog is not None
        queue = manager.catalog.queue
        number = await queue.submit(QueuedTransfer.of((LOCAL, "/a"), [(LOCAL, "/b")]))
        first = await queue.claim("dead worker")
        assert first is not None and first.id == number
        assert await queue.claim("other") is None  # held, and beating recently
        assert await queue.beat("dead worker", [number]) == []
        await asyncio.sleep(1.2)  # no beat for longer than stale_lock_after
        taken = await queue.claim("other")
        assert taken is not None and (taken.id, taken.attempts) == (number, 2)
        assert await queue.beat("dead worker", [number]) == [number]  # it is not its any more
        assert not await queue.finish("dead worker", number, "done")
        assert await queue.finish("other", number, "done")
        assert (await queue.get(number)).state == "done"


def test_queue_worker_needs_an_open_catalog() -> None:
    with pytest.raises(StreamFlowDataError, match="needs its manager's catalog"):
        QueueWorker(DefaultDataManager())
