"""Settings of the data manager, validated by pydantic."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal, TypeVar

import pydantic

from streamflow_data.errors import ConfigurationError

__all__ = ["CacheSettings", "CatalogSettings", "TransferSettings", "parse_options"]

_Model = TypeVar("_Model", bound=pydantic.BaseModel)

MiB = 1024 * 1024


class TransferSettings(pydantic.BaseModel):
    """How transfers move bytes.

    Memory used by file data in flight is bounded by ``block_count x block_size`` (64 MiB
    by default) for all the transfers of a manager together, whatever the file sizes and
    the number of destinations: a reader waits for a free block when all are taken.
    """

    model_config = pydantic.ConfigDict(extra="forbid", frozen=True)

    chunk_size: int = pydantic.Field(default=64 * MiB, ge=4096)
    """A file larger than this is moved as chunks, in parallel where destinations allow."""
    block_size: int = pydantic.Field(default=4 * MiB, ge=4096, le=1024 * MiB)
    """Bytes read from the source at a time, then written to every destination."""
    block_count: int = pydantic.Field(default=16, ge=2, le=65536)
    """Blocks in the pool: with ``block_size``, the memory bound."""
    max_concurrent_files: int = pydantic.Field(default=8, ge=1, le=1024)
    """Files (or batches of small files) of one transfer in flight at once."""
    max_batch_files: int = pydantic.Field(default=256, ge=1, le=65536)
    """Small files (a block or less) of a tree moved together in one bulk operation."""
    max_concurrent_chunks: int = pydantic.Field(default=4, ge=1, le=1024)
    """Chunks of one transfer in flight at once (all its files together)."""
    max_sessions_per_location: int = pydantic.Field(default=8, ge=1, le=1024)
    """Reads or writes in flight at once on one location, across all transfers."""
    max_retries: int = pydantic.Field(default=3, ge=0, le=100)
    """Times a file (or a block write) is tried again after a retryable error."""
    retry_delay: float = pydantic.Field(default=0.1, ge=0.0, le=60.0)
    """Seconds before the first retry; each further retry waits twice as long (10 s at most)."""

    @property
    def memory_bound(self) -> int:
        """Bytes of file data held in memory at most."""
        return self.block_count * self.block_size

    def retry_wait(self, attempt: int) -> float:
        """Seconds to wait before retry number ``attempt`` (1, 2, ...)."""
        return float(min(self.retry_delay * 2 ** (attempt - 1), 10.0))


class CatalogSettings(pydantic.BaseModel):
    """Where the data manager keeps what must survive a restart, and how processes that
    share the file take turns writing a destination."""

    model_config = pydantic.ConfigDict(extra="forbid", frozen=True)

    path: str = ":memory:"
    """The SQLite file (created if missing); ``:memory:`` keeps nothing after close."""
    busy_timeout: float = pydantic.Field(default=10.0, gt=0.0, le=3600.0)
    """Seconds to wait for another process's write to the file before failing."""
    lock_policy: Literal["wait", "fail"] = "wait"
    """When another process is writing a destination path: wait for it, or fail at once
    with :class:`~streamflow_data.errors.TransferLockedError`."""
    lock_timeout: float = pydantic.Field(default=3600.0, ge=0.0)
    """Seconds to wait for a destination lock (``wait`` policy) before failing."""
    stale_lock_after: float = pydantic.Field(default=30.0, ge=1.0, le=86400.0)
    """A lock whose holder stopped refreshing it this many seconds ago (a process that
    died) is taken over. Holders refresh their locks every third of this."""


class CacheSettings(pydantic.BaseModel):
    """The budget of replicas the manager fetches to the local node."""

    model_config = pydantic.ConfigDict(extra="forbid", frozen=True)

    budget: int = pydantic.Field(ge=0)
    """Bytes of fetched replicas kept on the local node at most."""
    when_full: Literal["wait", "fail"] = "wait"
    """When a copy does not fit and nothing can be evicted (all pinned or in use): wait
    for space, or fail at once with :class:`~streamflow_data.errors.CacheFullError`."""
    wait_timeout: float = pydantic.Field(default=300.0, ge=0.0)
    """Seconds a copy waits for space (``wait``) before failing."""


def parse_options(model: type[_Model], options: Mapping[str, object], what: str) -> _Model:
    """Validate ``options`` into ``model``, reporting every mistake by key.

    Raises :class:`~streamflow_data.errors.ConfigurationError` naming ``what`` was being
    configured, each wrong key, and what was expected there.
    """
    try:
        return model.model_validate(dict(options))
    except pydantic.ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc']) or '(root)'}: {error['msg']}"
            f" (got {error['input']!r})"
            for error in exc.errors()
        )
        raise ConfigurationError(f"invalid options for {what}: {problems}") from exc
