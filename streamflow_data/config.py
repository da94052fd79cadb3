"""Settings of the data manager: frozen pydantic models (see
:mod:`streamflow_data.validation`)."""

from __future__ import annotations

from typing import ClassVar, Literal

import pydantic

from streamflow_data.validation import Settings

__all__ = [
    "BACKOFF_CAP",
    "CacheSettings",
    "CatalogSettings",
    "ServiceSettings",
    "TransferSettings",
    "backoff",
]

MiB = 1024 * 1024

BACKOFF_CAP = 10.0
"""The longest wait between two attempts, in seconds, wherever something is retried."""


def backoff(first: float, attempt: int) -> float:
    """Seconds to wait before retry number ``attempt`` (1, 2, ...): ``first``, doubling
    with each attempt, at most :data:`BACKOFF_CAP`."""
    return float(min(first * 2 ** (attempt - 1), BACKOFF_CAP))


class TransferSettings(Settings):
    """How transfers move bytes.

    Memory used by file data in flight is bounded by ``block_count x block_size`` (64 MiB
    by default) for all the transfers of a manager together, whatever the file sizes and
    the number of destinations: a reader waits for a free block when all are taken.
    """

    kind: ClassVar[str] = "transfer settings"

    chunk_size: int = pydantic.Field(default=64 * MiB, ge=4096)
    """A file larger than this is moved as chunks, in parallel where destinations allow."""
    block_size: int = pydantic.Field(default=4 * MiB, ge=4096, le=1024 * MiB)
    """Bytes read from the source at a time, then written to every destination."""
    block_count: int = pydantic.Field(default=16, ge=2, le=65536)
    """Blocks in the pool: with ``block_size``, the memory bound."""
    max_concurrent_files: int = pydantic.Field(default=8, ge=1, le=1024)
    """Files (or batches of small files) of one transfer read at once; batches no more
    than the source connector's ``batch_streams`` says are worth it (over SSH, enough to
    hide a session's start-up). A batch that has been read is written while the next is
    read (as many at once at a destination as its connector's ``batch_streams`` allows):
    batches read ahead hold a block each, so the block pool still bounds the memory."""
    max_batch_files: int = pydantic.Field(default=1024, ge=1, le=65536)
    """Small files (a block or less) of a tree moved together in one bulk operation, at
    most. A tree of fewer than ``max_concurrent_files`` such batches is cut into smaller
    ones (of a quarter of this at least), so that several move at once."""
    max_concurrent_chunks: int = pydantic.Field(default=4, ge=1, le=1024)
    """Chunks of one transfer in flight at once (all its files together)."""
    max_retries: int = pydantic.Field(default=3, ge=0, le=100)
    """Times a file (or a block write) is tried again after a retryable error."""
    retry_delay: float = pydantic.Field(default=0.1, ge=0.0, le=60.0)
    """Seconds before the first retry; each further retry waits twice as long (10 s at most)."""
    checksum: Literal["crc32c", "sha256", "none"] = pydantic.Field(default="crc32c")
    """How copies are verified.

    ``crc32c``: the CRC32C of every block is computed as it is read, and each destination
    checks the bytes it stored against it before publishing the file (the storage's own
    route: reading the file back, the host's hashes, S3's checksums). A file that the
    source connector's own route writes into a local destination file (``get_file``:
    the SSH connector's ``ssh``; see :mod:`~streamflow_data.shell.handover`) never passes
    through this process: it is checked by the bytes counted into the file and that
    route's own checks.

    ``sha256``: the same, and then every copied file is read back from the source and from
    each destination and their SHA-256 compared, before a staged tree is published. A
    cryptographic, end-to-end check for one more read of the source and of each copy;
    a copy that differs is removed and its destination fails.

    ``none``: nothing is computed or compared; the storage is trusted (for copies whose
    integrity is checked elsewhere, where verification's reads cost too much)."""
    keep_setid: bool = pydantic.Field(default=False)
    """Give copied files the setuid and setgid bits their source has. By default they are
    dropped, as ``cp`` drops them when the copy is not owned by the source's owner: a
    copy must not become a program that runs as somebody else. Directories keep theirs
    (a setgid directory gives new files its group)."""

    @property
    def verify_writes(self) -> bool:
        """Whether destinations check what they store against the source's CRC32C."""
        return self.checksum != "none"

    @property
    def memory_bound(self) -> int:
        """Bytes of file data held in memory at most."""
        return self.block_count * self.block_size

    def retry_wait(self, attempt: int) -> float:
        """Seconds to wait before retry number ``attempt`` (1, 2, ...): see :func:`backoff`."""
        return backoff(self.retry_delay, attempt)


class CatalogSettings(Settings):
    """Where the data manager keeps what must survive a restart, and how processes that
    share the file take turns writing a destination."""

    kind: ClassVar[str] = "catalog settings"

    path: str = pydantic.Field(default=":memory:")
    """The SQLite file (created if missing; ``:memory:`` keeps nothing after close), or a
    PostgreSQL database, ``postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE`` (the
    ``postgresql`` extra installs its driver, asyncpg)."""
    busy_timeout: float = pydantic.Field(default=10.0, gt=0.0, le=3600.0)
    """Seconds to wait for another process's write to the file before failing."""
    lock_policy: Literal["wait", "fail"] = pydantic.Field(default="wait")
    """When another process is writing a destination path: wait for it, or fail at once
    with :class:`~streamflow_data.errors.TransferLockedError`."""
    lock_timeout: float = pydantic.Field(default=3600.0, ge=0.0)
    """Seconds to wait for a destination lock (``wait`` policy) before failing."""
    follow_interval: float = pydantic.Field(default=1.0, ge=0.0, le=3600.0)
    """Seconds between two looks for the changes of the replica graph that other managers
    sharing the catalog have written (0: none; the graph is read when opened only)."""
    stale_lock_after: float = pydantic.Field(default=30.0, ge=1.0, le=86400.0)
    """A lock whose holder stopped refreshing it this many seconds ago (a process that
    died) is taken over. Holders refresh their locks every third of this."""


class ServiceSettings(Settings):
    """The service (``streamflow-data serve``): where it listens, where the commands find
    it, and its bearer token."""

    kind: ClassVar[str] = "service settings"

    listen: str | None = pydantic.Field(default=None, pattern=r"^(unix:.+|.+:[0-9]{1,5})$")
    """Where ``serve`` listens, ``unix:PATH`` or ``HOST:PORT`` (``--listen`` overrides);
    unset: a Unix socket ``service.sock`` beside the default catalog."""
    url: str | None = pydantic.Field(default=None, pattern=r"^(unix://|https?://).+$")
    """The running service ``cp``, ``locate``, ``status`` and ``stats`` work through,
    ``unix:///PATH`` or ``http://HOST:PORT`` (``--service`` and
    ``$STREAMFLOW_DATA_SERVICE`` override); unset: the commands work in their own process."""
    token_file: str | None = None
    """The file whose first line is the bearer token: ``serve`` requires it, the commands
    send it (``--token-file`` and ``$STREAMFLOW_DATA_TOKEN`` override). Relative to the
    configuration file."""
    queue: bool = False
    """Queue mode (``serve --queue``): transfers submitted go to the catalog's queue, which
    every service sharing the catalog in queue mode drains; a service that dies leaves
    its transfers to the others, who resume them. Needs a catalog others can reach."""
    queue_concurrency: int = pydantic.Field(default=4, ge=1, le=1024)
    """Queued transfers this service runs at once, in queue mode."""


class CacheSettings(Settings):
    """The budget of replicas the manager fetches to the local node."""

    kind: ClassVar[str] = "cache settings"

    budget: int = pydantic.Field(ge=0)
    """Bytes of fetched replicas kept on the local node at most."""
    when_full: Literal["wait", "fail"] = pydantic.Field(default="wait")
    """When a copy does not fit and nothing can be evicted (all pinned or in use): wait
    for space, or fail at once with :class:`~streamflow_data.errors.CacheFullError`."""
    wait_timeout: float = pydantic.Field(default=300.0, ge=0.0)
    """Seconds a copy waits for space (``wait``) before failing."""
