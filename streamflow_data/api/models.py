"""The JSON documents of the service's API, version 1: every request and response body is
one of these pydantic models, so the service validates what it receives, the client what it
gets back, and the OpenAPI document describes both from the same source."""

from __future__ import annotations

from typing import Annotated, Literal

import pydantic

__all__ = [
    "API_VERSION",
    "MAX_DESTINATIONS",
    "MAX_OPERATIONS",
    "CacheModel",
    "ChangeBatch",
    "ChangeEvent",
    "ChangesApplied",
    "DeploymentList",
    "DeploymentModel",
    "DestinationModel",
    "ErrorBody",
    "ErrorDocument",
    "GraphOperation",
    "Health",
    "InvalidateOperation",
    "JournalList",
    "JournalQuery",
    "JournalRecord",
    "LocationModel",
    "LocationRef",
    "LocationTotals",
    "PathRef",
    "ProgressModel",
    "RegisterOperation",
    "RelateOperation",
    "ReplicaList",
    "ReplicaModel",
    "ReplicaQuery",
    "ReplicaType",
    "SourceAnswer",
    "SourceQuery",
    "StatisticsModel",
    "TransferFailureModel",
    "TransferList",
    "TransferRequest",
    "TransferState",
    "TransferStatus",
]

API_VERSION = "v1"
"""The prefix of every versioned route (``/v1/...``)."""

MAX_OPERATIONS = 10_000
"""Operations one :class:`ChangeBatch` may hold."""
MAX_DESTINATIONS = 1_000
"""Destinations one :class:`TransferRequest` may name."""


class _Model(pydantic.BaseModel):
    """A document of the API: frozen, and an unknown field is an error, not ignored."""

    model_config = pydantic.ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


Name = Annotated[str, pydantic.StringConstraints(min_length=1, max_length=255)]
"""A deployment or location name."""
Path = Annotated[str, pydantic.StringConstraints(min_length=1, max_length=4096)]
"""An absolute POSIX path (checked by the service as the data manager checks paths)."""
ReplicaType = Literal["primary", "symbolic_link"]


class LocationRef(_Model):
    """A location named by a request: ``name`` may be left out when the deployment has one
    location only."""

    deployment: Name
    name: Name | None = None


class LocationModel(_Model):
    """An execution location, as the service knows it."""

    deployment: str
    name: str
    local: bool = False
    hostname: str | None = None


class PathRef(_Model):
    """A path on a location."""

    location: LocationRef
    path: Path


class ReplicaModel(_Model):
    """One valid replica."""

    location: LocationModel
    path: str
    relpath: str
    type: ReplicaType
    available: bool
    """False while a transfer is still writing it."""


class ReplicaList(_Model):
    """The answer of ``GET /v1/replicas``: every valid replica of ``path``."""

    path: str
    replicas: list[ReplicaModel]


class SourceAnswer(_Model):
    """The answer of ``GET /v1/source``: the replica a transfer to ``to`` should read."""

    path: str
    to: str
    source: ReplicaModel | None
    seq: int
    """The replica graph's change number when the answer was made."""


class RegisterOperation(_Model):
    """Record that ``path`` on ``location`` holds data (its parents are recorded too)."""

    op: Literal["register"]
    location: LocationRef
    path: Path
    relpath: Path | None = None
    type: ReplicaType = "primary"


class RelateOperation(_Model):
    """Record that two registered replicas hold the same data."""

    op: Literal["relate"]
    first: PathRef
    second: PathRef


class InvalidateOperation(_Model):
    """Record that ``path`` and everything below it on ``location`` is gone."""

    op: Literal["invalidate"]
    location: LocationRef
    path: Path


GraphOperation = Annotated[
    RegisterOperation | RelateOperation | InvalidateOperation,
    pydantic.Field(discriminator="op"),
]


class ChangeBatch(_Model):
    """``POST /v1/changes``: operations applied in order. Every location and path is
    checked before any operation is applied; a relation naming a replica that is not
    registered fails at its place, the operations before it staying applied."""

    operations: Annotated[list[GraphOperation], pydantic.Field(max_length=MAX_OPERATIONS)]
    origin: Annotated[str, pydantic.StringConstraints(max_length=64)] | None = None
    """The client's own label, repeated in the change events these operations cause."""


class ChangesApplied(_Model):
    """The answer of ``POST /v1/changes``."""

    seq: int
    """The graph's change number after the last operation."""
    replicas: list[ReplicaModel | None]
    """For each operation, the replica it registered (None for the other kinds)."""


class ChangeEvent(_Model):
    """One change of the replica graph, as the event stream ``GET /v1/changes`` carries it."""

    seq: int
    """0 in the snapshot that starts a stream; then the change number, increasing."""
    op: Literal["register", "relate", "invalidate", "detach"]
    location: LocationModel
    path: str
    relpath: str | None = None
    type: Literal["primary", "symbolic_link", "invalid"] | None = None
    implicit: bool = False
    """A parent directory registered only for what it holds (in a snapshot)."""
    other_location: LocationModel | None = None
    other_path: str | None = None
    origin: str | None = None


class TransferRequest(_Model):
    """``POST /v1/transfers``: copy ``source`` to every destination, reading it once."""

    source: PathRef
    destinations: Annotated[
        list[PathRef], pydantic.Field(min_length=1, max_length=MAX_DESTINATIONS)
    ]
    writable: bool = False
    """Copies free to diverge from the source (registered on their own)."""
    links: bool = True
    """A non-writable destination on the source's own location becomes a symbolic link."""


TransferState = Literal["queued", "running", "done", "failed", "cancelled", "suspended"]
"""``queued``: waiting in the catalog's queue for a service to take it (queue mode)."""


class DestinationModel(_Model):
    """How far one destination of a transfer has got."""

    location: LocationModel
    path: str
    files_done: int
    files_failed: int
    bytes_done: int
    files_skipped: int = 0
    bytes_skipped: int = 0
    verification: str | None = None


class ProgressModel(_Model):
    """A snapshot of a running transfer (what :class:`TransferProgress` carries)."""

    source: LocationModel
    src_path: str
    destinations: list[DestinationModel]
    files_total: int
    bytes_total: int
    elapsed: float
    current_rate: float
    finished: bool
    file_states: dict[str, int]
    chunk_states: dict[str, int]
    journal_id: int | None = None


class ErrorBody(_Model):
    """What went wrong: the error's type (a streamflow-data error class name, or
    ``ValidationError``, ``NotFound``, ``Unauthorized``...), its message, and the request
    field at fault when there is one."""

    type: str
    message: str
    field: str | None = None
    location: LocationModel | None = None
    path: str | None = None


class ErrorDocument(_Model):
    """The body of every 4xx and 5xx answer."""

    error: ErrorBody


class TransferFailureModel(_Model):
    """One destination that failed, and why."""

    location: LocationModel
    path: str
    error: ErrorBody


class TransferStatus(_Model):
    """A submitted transfer."""

    id: int
    state: TransferState
    source: ReplicaModel
    destinations: list[PathRef]
    writable: bool
    submitted: float
    """Seconds since the epoch."""
    finished: float | None = None
    progress: ProgressModel | None = None
    """The last snapshot (None before the first, or when nothing was copied)."""
    failures: list[TransferFailureModel] = []
    error: ErrorBody | None = None
    """Why the whole transfer failed, when it did not get as far as its destinations."""
    seq: int | None = None
    """The graph's change number once the outcome was recorded."""


class TransferList(_Model):
    """The transfers the service holds, newest first."""

    transfers: list[TransferStatus]


class JournalRecord(_Model):
    """One transfer as the catalog's journal knows it (``streamflow-data status``)."""

    id: int
    source: str
    targets: list[str]
    state: str
    files: int
    bytes: int
    started: float
    updated: float
    verifications: list[str | None]


class JournalList(_Model):
    """The journal's transfers, newest first."""

    transfers: list[JournalRecord]


class LocationTotals(_Model):
    """Data moved from and to one location in this service's run."""

    location: LocationModel
    bytes_read: int
    bytes_written: int
    read_rate: float
    write_rate: float


class CacheModel(_Model):
    """The local replica cache (zeros without a budget)."""

    hits: int
    misses: int
    evictions: int
    bytes_evicted: int
    bytes_used: int
    budget: int


class StatisticsModel(_Model):
    """Totals of this service's run."""

    locations: list[LocationTotals]
    errors: dict[str, int]
    retries: int
    buffer_peak_bytes: int
    buffer_bytes_in_use: int
    buffer_capacity_bytes: int
    cache: CacheModel
    transfers: dict[str, int]
    """Transfers the service holds, by state."""


class DeploymentModel(_Model):
    """A deployment the service has a connector for, and its locations."""

    name: str
    locations: list[LocationModel]


class DeploymentList(_Model):
    """Every deployment the service serves."""

    deployments: list[DeploymentModel]


class Health(_Model):
    """``GET /healthz``."""

    status: Literal["ok"]
    version: str
    uptime: float


class ReplicaQuery(_Model):
    """The query of ``GET /v1/replicas`` (filters as ``get_data_locations``)."""

    path: Path
    deployment: Name | None = None
    location: Name | None = None
    type: ReplicaType | None = None


class SourceQuery(_Model):
    """The query of ``GET /v1/source``."""

    path: Path
    to: Name
    """The deployment the data is to be copied to."""
    timeout: Annotated[float, pydantic.Field(ge=0, le=3600)] = 60.0
    """Seconds to wait for a replica still being written (then 504)."""


class JournalQuery(_Model):
    """The query of ``GET /v1/journal``."""

    id: int | None = None
