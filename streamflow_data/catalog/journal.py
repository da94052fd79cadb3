"""The transfer journal in the catalog: what each transfer planned, wrote and left behind.

A transfer is identified by its arguments (source location and path, and each
destination's location and path): running the same transfer again finds the earlier run's
rows and resumes from them. Rows are written through the catalog's batched writer, except
the resume tokens of partial files, which the engine flushes before writing any byte of
them, so that a crash never leaves a partial file the journal does not know.
"""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass

from streamflow_data.catalog.database import Database
from streamflow_data.catalog.replicas import location_key
from streamflow_data.connectors.base import FileStat, WalkEntry
from streamflow_data.errors import UnknownTransferError
from streamflow_data.model import ExecutionLocation, Verification
from streamflow_data.transfer.journal import ChunkMark, PriorCopy, PriorRun, RunJournal
from streamflow_data.transfer.state import FileState

__all__ = ["SqliteJournal", "TransferRecord", "already_valid", "dump_state", "transfer_records"]

_STATE = (
    "INSERT INTO file_states (transfer, relpath, destination, state, token) "
    "VALUES (?, ?, ?, ?, ?) ON CONFLICT (transfer, relpath, destination) DO UPDATE SET "
    "state = coalesce(excluded.state, file_states.state), "
    "token = CASE WHEN excluded.state = 'valid' THEN NULL "
    "ELSE coalesce(excluded.token, file_states.token) END"
)
_CHUNK = (
    "INSERT INTO chunk_marks (transfer, relpath, destination, chunk, done, crc) "
    "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (transfer, relpath, destination, chunk) "
    "DO UPDATE SET done = excluded.done, crc = excluded.crc"
)
_ROOT = (
    "INSERT INTO transfer_roots (transfer, destination, root, staged) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (transfer, destination) DO UPDATE SET root = excluded.root, "
    "staged = excluded.staged"
)
_STATES = {state.value: state for state in FileState}


@dataclass(frozen=True, slots=True)
class TransferRecord:
    """One transfer as the journal knows it."""

    id: int
    source: str
    """``deployment/name:path`` of the source."""
    destinations: tuple[str, ...]
    """``deployment/name`` of each destination location."""
    dst_paths: tuple[str, ...]
    """The path at each destination, in the order of ``destinations``."""
    state: str
    """``running``, ``done``, ``failed`` or ``cancelled`` (``running`` after a crash too)."""
    files: int
    bytes: int
    started: float
    """Seconds since the epoch."""
    updated: float
    verifications: tuple[str | None, ...] = ()
    """What the check of the copies at each destination proved in the run that last
    copied there (a :class:`~streamflow_data.model.Verification` value; None where no
    run copied anything; empty for transfers journaled before this was kept)."""

    @property
    def targets(self) -> tuple[str, ...]:
        """``deployment/name:path`` of each destination."""
        return tuple(f"{d}:{p}" for d, p in zip(self.destinations, self.dst_paths, strict=True))


def _label(location: ExecutionLocation) -> str:
    return f"{location.deployment}/{location.name}"


class SqliteJournal(RunJournal):
    """The journal of one run of a transfer, backed by the catalog."""

    def __init__(
        self, database: Database, transfer_id: int, order: list[int], earlier: list[_Earlier]
    ) -> None:
        self._database = database
        self.transfer_id = transfer_id
        self._order = order  # engine destination index -> stored destination number
        self._index = {stored: index for index, stored in enumerate(order)}
        self._earlier = earlier
        self._checks: dict[int, str] = {}  # stored destination number -> Verification value

    @classmethod
    async def begin(
        cls,
        database: Database,
        source: ExecutionLocation,
        src_path: str,
        destinations: Sequence[tuple[ExecutionLocation, str]],
    ) -> SqliteJournal:
        """Find or create the journal entry of this transfer and load an earlier run.

        ``destinations`` are (location, path) pairs; their order does not matter. Each
        destination resumes from the transfer of the same source that wrote it last,
        whichever destinations that one had (a rerun with fewer or other destinations).
        """
        pairs = [(location_key(location), path) for location, path in destinations]
        stored = sorted(set(pairs))
        order = [stored.index(pair) for pair in pairs]
        by_key = {location_key(location): location for location, _ in destinations}
        labels = [_label(by_key[key]) for key, _ in stored]
        paths = [path for _, path in stored]
        if len(set(paths)) == 1:  # the form every earlier version wrote: their runs resume
            key = json.dumps([location_key(source), src_path, [k for k, _ in stored], paths[0]])
        else:
            key = json.dumps([location_key(source), src_path, [list(pair) for pair in stored]])
        found = await database.fetch_all("SELECT id FROM transfers WHERE key = ?", (key,))
        earlier = await _Earlier.latest(database, source, src_path, stored)
        now = time.time()
        async with database.transaction() as connection:
            if found:
                [(transfer_id,)] = found
                await connection.execute(
                    "UPDATE transfers SET state = 'running', updated = ? WHERE id = ?",
                    (now, transfer_id),
                )
            else:
                [(transfer_id,)] = await connection.execute(
                    "INSERT INTO transfers (key, source, src_path, destinations, dst_path, "
                    "dst_paths, state, started, updated) "
                    "VALUES (?, ?, ?, ?, ?, ?, 'running', ?, ?) RETURNING id",
                    (
                        key,
                        _label(source),
                        src_path,
                        json.dumps(labels),
                        paths[0],
                        json.dumps(paths),
                        now,
                        now,
                    ),
                )
        return cls(database, int(transfer_id), order, earlier)

    async def start(self, files: Sequence[WalkEntry], chunk_size: int, block_size: int) -> PriorRun:
        prior = PriorRun()
        planned = {entry.relpath: entry.stat for entry in files}
        for earlier in self._earlier:
            same_geometry = (earlier.chunk_size, earlier.block_size) == (chunk_size, block_size)
            for (relpath, stored), copy in earlier.copies.items():
                index = self._index.get(stored)
                if index is None:
                    continue
                if not earlier.unchanged(relpath, planned.get(relpath)):
                    if copy.token is not None:
                        prior.stale.append((relpath, index, copy.token))
                    continue
                if not same_geometry:
                    copy.chunks.clear()
                prior.files[(relpath, index)] = copy
            for stored, root in earlier.roots.items():
                if stored in self._index:
                    prior.roots[self._index[stored]] = root
        total = sum(entry.stat.size for entry in files)
        async with self._database.transaction() as connection:
            transfer = self.transfer_id
            await connection.execute(
                "UPDATE transfers SET chunk_size = ?, block_size = ?, files = ?, bytes = ? "
                "WHERE id = ?",
                (chunk_size, block_size, len(files), total, transfer),
            )
            await connection.execute("DELETE FROM transfer_files WHERE transfer = ?", (transfer,))
            await connection.executemany(
                "INSERT INTO transfer_files (transfer, relpath, size, mtime_ns) "
                "VALUES (?, ?, ?, ?)",
                ((transfer, e.relpath, e.stat.size, e.stat.mtime_ns) for e in files),
            )
            for relpath, index, _token in prior.stale:
                await connection.execute(
                    "DELETE FROM chunk_marks WHERE transfer = ? AND relpath = ? "
                    "AND destination = ?",
                    (transfer, relpath, self._order[index]),
                )
        self._earlier = []
        return prior

    def root(self, index: int, root: str, staged: bool) -> None:
        self._database.enqueue(_ROOT, (self.transfer_id, self._order[index], root, int(staged)))

    def file_state(self, key: tuple[str, int], state: FileState) -> None:
        relpath, index = key
        row = (self.transfer_id, relpath, self._order[index], state.value, None)
        self._database.enqueue(_STATE, row)

    def token(self, relpath: str, index: int, token: str | None) -> None:
        row = (self.transfer_id, relpath, self._order[index], FileState.TRANSFERRING.value, token)
        self._database.enqueue(_STATE, row)

    def chunk(self, relpath: str, index: int, number: int, mark: ChunkMark) -> None:
        row = (self.transfer_id, relpath, self._order[index], number, mark.done, mark.crc)
        self._database.enqueue(_CHUNK, row)

    def checked(self, index: int, kind: Verification | None) -> None:
        if kind is not None:
            self._checks[self._order[index]] = kind.value

    async def flush(self) -> None:
        await self._database.flush()

    async def finish(self, outcome: str) -> None:
        await self._database.flush()
        checks = None
        if self._checks:
            checks = json.dumps([self._checks.get(n) for n in range(max(self._checks) + 1)])
        async with self._database.transaction() as connection:
            await connection.execute(
                "UPDATE transfers SET state = ?, updated = ?, "
                "verifications = coalesce(?, verifications) WHERE id = ?",
                (outcome, time.time(), checks, self.transfer_id),
            )
            await connection.execute(
                "DELETE FROM chunk_marks WHERE transfer = ?1 AND (relpath, destination) IN "
                "(SELECT relpath, destination FROM file_states WHERE transfer = ?1 "
                "AND state = 'valid')",
                (self.transfer_id,),
            )


def _stored_destinations(key: str) -> list[tuple[str, str]]:
    """The (location key, path) of each destination of a transfer, by stored number."""
    parts = json.loads(key)
    if len(parts) == 4:  # [source, src_path, location keys, the path they all share]
        return [(location, parts[3]) for location in parts[2]]
    return [(location, path) for location, path in parts[2]]


async def already_valid(
    database: Database,
    source: ExecutionLocation,
    src_path: str,
    destinations: Sequence[tuple[ExecutionLocation, str]],
    files: Sequence[WalkEntry],
) -> list[tuple[int, int]]:
    """For each destination, the number and bytes of ``files`` that the last run of the
    same source to it left valid, from a source unchanged since (size and time): what a
    run would skip, if they are still there. Reads only; writes no journal entry."""
    pairs = [(location_key(location), path) for location, path in destinations]
    stored = sorted(set(pairs))
    planned = {entry.relpath: entry.stat for entry in files}
    valid: dict[int, dict[str, int]] = {}
    for earlier in await _Earlier.latest(database, source, src_path, stored):
        for (relpath, number), copy in earlier.copies.items():
            stat = planned.get(relpath)
            if (
                stat is not None
                and copy.state is FileState.VALID
                and earlier.unchanged(relpath, stat)
            ):
                valid.setdefault(number, {})[relpath] = stat.size
    found = [valid.get(stored.index(pair), {}) for pair in pairs]
    return [(len(sizes), sum(sizes.values())) for sizes in found]


@dataclass(slots=True)
class _Earlier:
    """The rows an earlier run of a transfer left, numbered as this transfer numbers its
    destinations."""

    chunk_size: int | None
    block_size: int | None
    sources: dict[str, tuple[int, int]]
    roots: dict[int, str]
    copies: dict[tuple[str, int], PriorCopy]

    def unchanged(self, relpath: str, stat: FileStat | None) -> bool:
        """Whether the source file at ``relpath``, planned now as ``stat``, is the one that
        run copied (the same size and time)."""
        return stat is not None and self.sources.get(relpath) == (stat.size, stat.mtime_ns)

    @classmethod
    async def latest(
        cls,
        database: Database,
        source: ExecutionLocation,
        src_path: str,
        stored: list[tuple[str, str]],
    ) -> list[_Earlier]:
        """For each destination, the rows of the transfer of the same source that wrote it
        last; one :class:`_Earlier` per transfer found."""
        wanted = {destination: number for number, destination in enumerate(stored)}
        found: dict[int, tuple[int | None, int | None, dict[int, int]]] = {}
        rows = await database.fetch_all(
            "SELECT id, key, chunk_size, block_size FROM transfers "
            "WHERE source = ? AND src_path = ? ORDER BY updated DESC, id DESC",
            (_label(source), src_path),
        )
        for transfer, key, chunk_size, block_size in rows:
            if json.loads(key)[0] != location_key(source):
                continue  # a label shared by two locations (a '/' inside a name)
            for theirs, destination in enumerate(_stored_destinations(key)):
                ours = wanted.pop(destination, None)
                if ours is not None:
                    found.setdefault(transfer, (chunk_size, block_size, {}))[2][theirs] = ours
            if not wanted:
                break
        return [
            await cls.load(database, transfer, chunk_size, block_size, renumber)
            for transfer, (chunk_size, block_size, renumber) in found.items()
        ]

    @classmethod
    async def load(
        cls,
        database: Database,
        transfer: int,
        chunk_size: int | None,
        block_size: int | None,
        renumber: dict[int, int],
    ) -> _Earlier:
        """The rows of ``transfer`` for the destinations in ``renumber``, under the
        numbers it gives them."""
        number = renumber.get

        sources = {
            relpath: (size, mtime_ns)
            for relpath, size, mtime_ns in await database.fetch_all(
                "SELECT relpath, size, mtime_ns FROM transfer_files WHERE transfer = ?",
                (transfer,),
            )
        }
        roots: dict[int, str] = {}
        for destination, root, staged in await database.fetch_all(
            "SELECT destination, root, staged FROM transfer_roots WHERE transfer = ?",
            (transfer,),
        ):
            ours = number(destination)
            if staged and ours is not None:
                roots[ours] = root
        copies: dict[tuple[str, int], PriorCopy] = {}
        for relpath, destination, state, token in await database.fetch_all(
            "SELECT relpath, destination, state, token FROM file_states WHERE transfer = ?",
            (transfer,),
        ):
            ours = number(destination)
            if ours is not None:
                copies[(relpath, ours)] = PriorCopy(_STATES[state], token)
        for relpath, destination, chunk, done, crc in await database.fetch_all(
            "SELECT relpath, destination, chunk, done, crc FROM chunk_marks WHERE transfer = ?",
            (transfer,),
        ):
            ours = number(destination)
            copy = None if ours is None else copies.get((relpath, ours))
            if copy is not None:
                copy.chunks[chunk] = ChunkMark(done, crc)
        return cls(chunk_size, block_size, sources, roots, copies)


async def transfer_records(database: Database, transfer: int | None = None) -> list[TransferRecord]:
    """Every journaled transfer, newest first, or the one with id ``transfer``."""
    query = (
        "SELECT id, source, src_path, destinations, dst_path, dst_paths, state, "
        "coalesce(files, 0), coalesce(bytes, 0), started, updated, verifications FROM transfers"
    )
    parameters: tuple[int, ...] = ()
    if transfer is not None:
        query += " WHERE id = ?"
        parameters = (transfer,)
    rows = await database.fetch_all(query + " ORDER BY id DESC", parameters)
    records = []
    for row in rows:
        destinations = tuple(json.loads(row[3]))
        # Transfers journaled before schema 4 had one path for every destination.
        paths = tuple(json.loads(row[5])) if row[5] else (row[4],) * len(destinations)
        records.append(
            TransferRecord(
                id=row[0],
                source=f"{row[1]}:{row[2]}",
                destinations=destinations,
                dst_paths=paths,
                state=row[6],
                files=row[7],
                bytes=row[8],
                started=row[9],
                updated=row[10],
                verifications=tuple(json.loads(row[11])) if row[11] else (),
            )
        )
    return records


async def dump_state(database: Database, transfer: int) -> str:
    """The per-file states of a transfer as CSV: one row per (file, destination).

    Columns: ``relpath``, ``destination`` (``deployment/name:path``), ``state``,
    ``size``, ``bytes_written`` (the size once valid, else what chunk marks record) and
    ``partial_file`` (the resume token of a partly written file).
    """
    await database.flush()
    records = await transfer_records(database, transfer)
    if not records:
        raise UnknownTransferError(transfer)
    record = records[0]
    rows = await database.fetch_all(
        "SELECT s.relpath, s.destination, s.state, coalesce(f.size, 0), s.token, "
        "(SELECT coalesce(sum(done), 0) FROM chunk_marks c WHERE c.transfer = s.transfer "
        "AND c.relpath = s.relpath AND c.destination = s.destination) "
        "FROM file_states s LEFT JOIN transfer_files f "
        "ON f.transfer = s.transfer AND f.relpath = s.relpath "
        "WHERE s.transfer = ? ORDER BY s.relpath, s.destination",
        (transfer,),
    )
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["relpath", "destination", "state", "size", "bytes_written", "partial_file"])
    for relpath, destination, state, size, token, written in rows:
        done = size if state == "valid" else written
        writer.writerow([relpath, record.targets[destination], state, size, done, token or ""])
    return out.getvalue()
