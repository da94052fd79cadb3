"""Source selection: which replica a transfer should read from."""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from streamflow_data.model import DataLocation

__all__ = ["DefaultSourcePolicy", "SourcePolicy"]


@runtime_checkable
class SourcePolicy(Protocol):
    """Picks the best source among candidate replicas for a destination deployment.

    ``candidates`` are the valid PRIMARY replicas of the data, some possibly still being
    written; the manager waits for the chosen one to become available and asks again if it
    then turns out invalid. Return None when no candidate is suitable.
    """

    def select(
        self, candidates: Sequence[DataLocation], dst_deployment: str
    ) -> DataLocation | None:
        """Return the chosen candidate, or None."""
        ...


class DefaultSourcePolicy:
    """StreamFlow's rule: the destination deployment first, then the local node, then any.

    Among several candidates of equal rank the first registered on the destination
    deployment or the local node wins; otherwise the choice is uniformly random, which
    spreads reads over the replicas. Pass ``rng`` for reproducible choices.
    """

    def __init__(self, rng: random.Random | None = None) -> None:
        self._rng = rng or random.Random()

    def select(
        self, candidates: Sequence[DataLocation], dst_deployment: str
    ) -> DataLocation | None:
        """Return the preferred candidate, or None when there is none."""
        if not candidates:
            return None
        for candidate in candidates:
            if candidate.location.deployment == dst_deployment:
                return candidate
        for candidate in candidates:
            if candidate.location.local:
                return candidate
        return self._rng.choice(candidates)
