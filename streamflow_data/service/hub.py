"""The replica graph's changes, numbered, for every client following them."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

from streamflow_data.api.models import ChangeEvent
from streamflow_data.api.wire import change_event
from streamflow_data.changes import GraphChange

__all__ = ["ChangeHub", "Subscription"]

QUEUE_LIMIT = 100_000
"""Changes a follower may fall behind by before the service drops it (it reconnects and
starts again from a snapshot)."""


class Subscription:
    """One follower's queue of changes, bounded: a follower too slow to keep up is
    dropped rather than let the service's memory grow."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[ChangeEvent | None] = asyncio.Queue()
        self.dropped = False

    def put(self, event: ChangeEvent) -> None:
        if self.dropped:
            return
        if self.queue.qsize() >= QUEUE_LIMIT:
            self.dropped = True
            self.queue.put_nowait(None)
            return
        self.queue.put_nowait(event)


class ChangeHub:
    """Numbers each change the data manager reports (its observer) and hands it to every
    subscription; ``origin`` labels the changes made while a client's batch is applied."""

    def __init__(self) -> None:
        self.seq = 0
        """The number of the last change."""
        self.origin: str | None = None
        self._subscriptions: set[Subscription] = set()

    def __call__(self, change: GraphChange) -> None:
        self.seq += 1
        if self._subscriptions:
            event = change_event(change, self.seq, self.origin)
            for subscription in self._subscriptions:
                subscription.put(event)

    @contextlib.contextmanager
    def labelled(self, origin: str | None) -> Iterator[None]:
        """Label the changes made inside the block (synchronous code only)."""
        self.origin = origin
        try:
            yield
        finally:
            self.origin = None

    @contextlib.contextmanager
    def subscribe(self) -> Iterator[Subscription]:
        """A subscription to every later change, for the duration of the block."""
        subscription = Subscription()
        self._subscriptions.add(subscription)
        try:
            yield subscription
        finally:
            self._subscriptions.discard(subscription)
