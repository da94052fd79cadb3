"""What the catalog remembers: ``status``, ``dump-state`` and ``stats``."""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import time
from collections.abc import Sequence
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from streamflow_data.catalog import TransferRecord
from streamflow_data.cli.render import human, table
from streamflow_data.cli.session import EXIT_OK, CommandParser, Session, write_text
from streamflow_data.errors import UnknownTransferError

if TYPE_CHECKING:
    from streamflow_data.api.models import JournalRecord

__all__ = ["COMMANDS"]


def _add_status(commands: Any, common: argparse.ArgumentParser) -> None:
    status = commands.add_parser(
        "status",
        parents=[common],
        help="list the transfers of the journal, newest first, or show one",
    )
    status.add_argument(
        "transfer", metavar="TRANSFER", type=int, nargs="?", help="only this transfer (its id)"
    )
    status.set_defaults(handler=status_command)


def _add_dump_state(commands: Any, common: argparse.ArgumentParser) -> None:
    dump = commands.add_parser(
        "dump-state",
        parents=[common],
        help="write the per-file states of a transfer as CSV (--json: as JSON)",
        description="Columns: relpath,destination,state,size,bytes_written,partial_file.",
    )
    dump.add_argument("transfer", metavar="TRANSFER", type=int, help="the transfer's id (status)")
    dump.add_argument("-o", "--output", metavar="FILE", help="write to FILE, not stdout")
    dump.set_defaults(handler=dump_state_command)


def _add_stats(commands: Any, common: argparse.ArgumentParser) -> None:
    stats = commands.add_parser(
        "stats",
        parents=[common],
        help="bytes moved and rates per location, cache use and errors, over every run",
    )
    stats.set_defaults(handler=stats_command)


COMMANDS: dict[str, CommandParser] = {
    "status": _add_status,
    "dump-state": _add_dump_state,
    "stats": _add_stats,
}


async def status_command(session: Session, args: argparse.Namespace) -> int:
    """Run ``status``."""
    if session.service is not None:
        from streamflow_data.api.models import JournalList

        params = {} if args.transfer is None else {"id": args.transfer}
        async with session.remote() as remote:
            journal = await remote.client.call("GET", "/v1/journal", JournalList, params=params)
        records: Sequence[TransferRecord | JournalRecord] = journal.transfers
        documents = [record.model_dump() for record in journal.transfers]
    else:
        async with session.configuration.create_manager() as manager:
            records = await manager.transfers(args.transfer)
        documents = [asdict(record) for record in records]
    if args.transfer is not None and not records:
        raise UnknownTransferError(args.transfer)
    if session.json:
        session.emit(documents)
        return EXIT_OK
    rows = [
        [
            record.id,
            record.state,
            record.files,
            human(record.bytes),
            ",".join(sorted({kind or "-" for kind in record.verifications})) or "-",
            time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(record.updated)),
            f"{record.source} -> {', '.join(record.targets)}",
        ]
        for record in records
    ]
    if rows:
        header = ["ID", "STATE", "FILES", "BYTES", "CHECKED", "UPDATED", "TRANSFER"]
        session.stdout.write(table(header, rows))
    else:
        session.say("the journal holds no transfer yet")
    return EXIT_OK


async def dump_state_command(session: Session, args: argparse.Namespace) -> int:
    """Run ``dump-state``."""
    async with session.configuration.create_manager() as manager:
        text = await manager.dump_state(args.transfer)
    if session.json:
        session.emit({"transfer": args.transfer, "files": _file_states(text)})
        return EXIT_OK
    if args.output is None:
        session.stdout.write(text)
    else:
        await asyncio.to_thread(write_text, args.output, text)
    return EXIT_OK


def _file_states(text: str) -> list[dict[str, object]]:
    """The rows of ``dump-state``'s CSV as JSON objects, numbers as numbers."""
    rows: list[dict[str, object]] = []
    for row in csv.DictReader(io.StringIO(text)):
        rows.append(
            {
                **row,
                "size": int(row["size"]),
                "bytes_written": int(row["bytes_written"]),
                "partial_file": row["partial_file"] or None,
            }
        )
    return rows


async def stats_command(session: Session, args: argparse.Namespace) -> int:
    """Run ``stats``."""
    if session.service is not None:
        from streamflow_data.api.models import StatisticsModel

        async with session.remote() as remote:
            live = await remote.client.call("GET", "/v1/statistics", StatisticsModel)
        if session.json:
            session.emit(live.model_dump())
        else:
            rows = [
                [
                    f"{t.location.deployment}/{t.location.name}",
                    human(t.bytes_read),
                    f"{human(t.read_rate)}/s",
                    human(t.bytes_written),
                    f"{human(t.write_rate)}/s",
                ]
                for t in live.locations
            ]
            header = ["LOCATION", "READ", "READ RATE", "WRITTEN", "WRITE RATE"]
            session.stdout.write(table(header, rows) if rows else "no transfer in this run yet\n")
            transfers = ", ".join(f"{state} {n}" for state, n in live.transfers.items() if n)
            session.stdout.write(f"service transfers: {transfers or 'none'}\n")
        return EXIT_OK
    async with session.configuration.create_manager() as manager:
        catalog = manager.catalog
        assert catalog is not None  # the command line always configures one
        totals = await catalog.statistics()
    budget = session.configuration.cache.budget if session.configuration.cache else None
    locations = {
        str(location): {
            "bytes_read": stats.bytes_read,
            "bytes_written": stats.bytes_written,
            "read_rate": stats.read_rate,
            "write_rate": stats.write_rate,
        }
        for location, stats in totals.locations.items()
    }
    cache = asdict(totals.cache) | {"budget": budget}
    cache.pop("bytes_used")
    if session.json:
        session.emit(
            {
                "locations": locations,
                "errors": dict(totals.errors),
                "retries": totals.retries,
                "cache": cache,
            }
        )
        return EXIT_OK
    rows = [
        [
            name,
            human(row["bytes_read"]),
            f"{human(row['read_rate'])}/s",
            human(row["bytes_written"]),
            f"{human(row['write_rate'])}/s",
        ]
        for name, row in locations.items()
    ]
    out = session.stdout
    if rows:
        out.write(table(["LOCATION", "READ", "READ RATE", "WRITTEN", "WRITE RATE"], rows))
    else:
        out.write("no transfer recorded yet\n")
    out.write(
        f"cache: {cache['hits']} hit(s), {cache['misses']} miss(es), {cache['evictions']} "
        f"eviction(s) ({human(cache['bytes_evicted'])}); budget "
        f"{'none' if budget is None else human(budget)}\n"
    )
    errors = ", ".join(f"{name} {count}" for name, count in totals.errors.most_common())
    out.write(f"errors: {errors or 'none'}; retries: {totals.retries}\n")
    return EXIT_OK
