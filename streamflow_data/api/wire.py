"""Between the library's types and the API's documents, both ways: what the service sends
and what the remote client rebuilds from it (errors included, as their own types)."""

from __future__ import annotations

from typing import Literal

from streamflow_data import errors
from streamflow_data.api.models import (
    ChangeEvent,
    DestinationModel,
    ErrorBody,
    LocationModel,
    ProgressModel,
    ReplicaModel,
    ReplicaType,
)
from streamflow_data.changes import Detached, GraphChange, Invalidated, Registered, Related
from streamflow_data.model import DataLocation, DataType, ExecutionLocation, Verification
from streamflow_data.transfer.events import DestinationProgress, TransferProgress
from streamflow_data.transfer.state import ChunkState, FileState

__all__ = [
    "change_event",
    "error_body",
    "graph_change",
    "location",
    "location_model",
    "progress",
    "progress_model",
    "replica_model",
    "restore_error",
]


def location_model(location: ExecutionLocation) -> LocationModel:
    return LocationModel(
        deployment=location.deployment,
        name=location.name,
        local=location.local,
        hostname=location.hostname,
    )


def location(model: LocationModel) -> ExecutionLocation:
    return ExecutionLocation(model.deployment, model.name, model.local, model.hostname)


def replica_model(replica: DataLocation) -> ReplicaModel:
    kind: ReplicaType = (
        "symbolic_link" if replica.data_type is DataType.SYMBOLIC_LINK else "primary"
    )
    return ReplicaModel(
        location=location_model(replica.location),
        path=replica.path,
        relpath=replica.relpath,
        type=kind,
        available=replica.available,
    )


def change_event(change: GraphChange, seq: int, origin: str | None) -> ChangeEvent:
    """The event that reports ``change``, the graph's change number ``seq``."""
    where = location_model(change.location)
    if isinstance(change, Registered):
        return ChangeEvent(
            seq=seq,
            op="register",
            location=where,
            path=change.path,
            relpath=change.relpath,
            type=change.data_type.value,
            implicit=change.implicit,
            origin=origin,
        )
    if isinstance(change, Related):
        return ChangeEvent(
            seq=seq,
            op="relate",
            location=where,
            path=change.path,
            other_location=location_model(change.other_location),
            other_path=change.other_path,
            origin=origin,
        )
    op: Literal["invalidate", "detach"] = (
        "invalidate" if isinstance(change, Invalidated) else "detach"
    )
    return ChangeEvent(seq=seq, op=op, location=where, path=change.path, origin=origin)


def graph_change(event: ChangeEvent) -> GraphChange:
    """The change an event reports."""
    where = location(event.location)
    if event.op == "register":
        return Registered(
            where,
            event.path,
            event.relpath or event.path,
            DataType(event.type or "primary"),
            event.implicit,
        )
    if event.op == "relate":
        if event.other_location is None or event.other_path is None:
            raise errors.StreamFlowDataError(f"a relate event without its other end: {event}")
        return Related(where, event.path, location(event.other_location), event.other_path)
    if event.op == "invalidate":
        return Invalidated(where, event.path)
    return Detached(where, event.path)


def _destination_model(destination: DestinationProgress) -> DestinationModel:
    checked = destination.verification
    return DestinationModel(
        location=location_model(destination.location),
        path=destination.path,
        files_done=destination.files_done,
        files_failed=destination.files_failed,
        bytes_done=destination.bytes_done,
        files_skipped=destination.files_skipped,
        bytes_skipped=destination.bytes_skipped,
        verification=None if checked is None else checked.value,
    )


def progress_model(snapshot: TransferProgress) -> ProgressModel:
    return ProgressModel(
        source=location_model(snapshot.source),
        src_path=snapshot.src_path,
        destinations=[_destination_model(d) for d in snapshot.destinations],
        files_total=snapshot.files_total,
        bytes_total=snapshot.bytes_total,
        elapsed=snapshot.elapsed,
        current_rate=snapshot.current_rate,
        finished=snapshot.finished,
        file_states={state.value: count for state, count in snapshot.file_states.items()},
        chunk_states={state.value: count for state, count in snapshot.chunk_states.items()},
        journal_id=snapshot.transfer_id,
    )


def progress(model: ProgressModel) -> TransferProgress:
    """The snapshot a progress document reports (states this version does not know are
    left out)."""
    files = {s.value: s for s in FileState}
    chunks = {s.value: s for s in ChunkState}
    return TransferProgress(
        source=location(model.source),
        src_path=model.src_path,
        destinations=tuple(
            DestinationProgress(
                location(d.location),
                d.path,
                d.files_done,
                d.files_failed,
                d.bytes_done,
                d.files_skipped,
                d.bytes_skipped,
                None if d.verification is None else Verification(d.verification),
            )
            for d in model.destinations
        ),
        files_total=model.files_total,
        bytes_total=model.bytes_total,
        elapsed=model.elapsed,
        current_rate=model.current_rate,
        finished=model.finished,
        file_states={files[k]: n for k, n in model.file_states.items() if k in files},
        chunk_states={chunks[k]: n for k, n in model.chunk_states.items() if k in chunks},
        transfer_id=model.journal_id,
    )


def error_body(error: BaseException, field: str | None = None) -> ErrorBody:
    """The document reporting ``error``: its type name and message, and where it happened
    for a connector's error."""
    where = getattr(error, "location", None)
    path = getattr(error, "path", None)
    return ErrorBody(
        type=type(error).__name__,
        message=str(error),
        field=field,
        location=location_model(where) if isinstance(where, ExecutionLocation) else None,
        path=path if isinstance(path, str) else None,
    )


def restore_error(body: ErrorBody) -> errors.StreamFlowDataError:
    """The exception an error document reports, of its own type when it is one of the
    library's (with its message, location and path), else a :class:`StreamFlowDataError`
    whose message names the type."""
    cls = getattr(errors, body.type, None)
    if not (isinstance(cls, type) and issubclass(cls, errors.StreamFlowDataError)):
        return errors.StreamFlowDataError(f"{body.type}: {body.message}")
    error = cls.__new__(cls)
    Exception.__init__(error, body.message)
    if body.location is not None:
        error.location = location(body.location)  # type: ignore[attr-defined]
    if body.path is not None:
        error.path = body.path  # type: ignore[attr-defined]
    return error
