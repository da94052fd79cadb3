"""States of files and chunks, per destination, with O(1) answers to "how many in X?".

The per-file states are the validated-delivery life cycle of the reference upload client;
the chunk states are those of the ADL transfer client's StateManager.
"""

from __future__ import annotations

import enum
from collections import Counter
from collections.abc import Callable, Hashable, Iterator
from typing import Generic, TypeVar

__all__ = ["ChunkState", "FileState", "StateManager"]


class _FastHash(enum.Enum):
    """Members hash by identity (they are singletons), in C rather than Enum's Python
    ``__hash__``: states change several times per file."""

    __hash__ = object.__hash__


class FileState(_FastHash):
    """The life of one file at one destination."""

    READY = "ready"
    """Planned, not yet queued."""
    PENDING = "pending"
    """Queued for transfer (again, after a failure with retries left)."""
    TRANSFERRING = "transferring"
    """Bytes are moving."""
    DONE = "done"
    """Written; not yet validated."""
    VALID = "valid"
    """Validated (size and checksum) and published at its final name."""
    INVALID = "invalid"
    """Validation failed; retried if retries are left."""
    FAILED = "failed"
    """Gave up: the error was permanent or the retries ran out."""


class ChunkState(_FastHash):
    """The life of one chunk of a file at one destination."""

    PENDING = "pending"
    RUNNING = "running"
    FINISHED = "finished"
    ERRORED = "errored"
    CANCELLED = "cancelled"


K = TypeVar("K", bound=Hashable)
S = TypeVar("S", bound=enum.Enum)


class StateManager(Generic[K, S]):
    """The state of each of a set of objects, with per-state counts kept up to date.

    ``on_change`` is told of every change of state (the transfer journal records them).
    """

    def __init__(self, states: type[S], on_change: Callable[[K, S], None] | None = None) -> None:
        self._states: dict[K, S] = {}
        self._counts: Counter[S] = Counter(dict.fromkeys(states, 0))
        self._on_change = on_change

    def __setitem__(self, key: K, state: S) -> None:
        previous = self._states.get(key)
        if previous is not None:
            self._counts[previous] -= 1
        self._states[key] = state
        self._counts[state] += 1
        if self._on_change is not None and state is not previous:
            self._on_change(key, state)

    def __getitem__(self, key: K) -> S:
        return self._states[key]

    def __len__(self) -> int:
        return len(self._states)

    def __iter__(self) -> Iterator[K]:
        return iter(self._states)

    def count(self, state: S) -> int:
        """How many objects are in ``state``."""
        return self._counts[state]

    def all_in(self, *states: S) -> bool:
        """Whether every object is in one of ``states`` (True when there is none)."""
        return sum(self._counts[state] for state in states) == len(self._states)

    def counts(self) -> dict[S, int]:
        """Objects per state."""
        return dict(self._counts)
