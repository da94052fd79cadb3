"""``streamflow-data deliver``: a manifest's files, copied and validated one by one."""

from __future__ import annotations

import argparse
import asyncio
import os
import posixpath
from typing import Any

from streamflow_data.cli.render import table
from streamflow_data.cli.session import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_PARTIAL,
    CommandParser,
    Session,
    write_text,
)
from streamflow_data.cli.targets import parse_target
from streamflow_data.configfile import default_catalog
from streamflow_data.delivery import Delivery, DeliveryFile, read_manifest

__all__ = ["COMMANDS"]

_STATES = ("valid", "invalid", "failed", "done", "transferring", "pending", "ready")


def _add_deliver(commands: Any, common: argparse.ArgumentParser) -> None:
    deliver = commands.add_parser(
        "deliver",
        parents=[common],
        help="copy the files of a manifest and validate each against its checksum",
        description=(
            "Copy every file the manifest lists (CSV columns path,size,algorithm,checksum; "
            "algorithm crc32, crc32c or sha256) to DST, read each copy back and check it: "
            "ready -> pending -> transferring -> done -> valid | invalid, or failed after "
            "its retries. A rerun moves only what is not yet valid."
        ),
    )
    deliver.add_argument("--manifest", metavar="FILE", required=True, help="the manifest (CSV)")
    deliver.add_argument("dst", metavar="DST", help="the destination directory")
    deliver.add_argument(
        "--source",
        metavar="DIR",
        help="where the manifest's paths are (default: the manifest's directory)",
    )
    deliver.add_argument(
        "--csv",
        metavar="FILE",
        help="where to write the states (default: deliveries/delivery-ID.csv beside the "
        "catalog, in the state directory unless configured otherwise)",
    )
    deliver.add_argument(
        "--max-retries", type=int, default=2, metavar="N", help="retries of a failed transfer"
    )
    deliver.set_defaults(handler=deliver_command)


COMMANDS: dict[str, CommandParser] = {"deliver": _add_deliver}


class _StatusLine:
    """One line redrawn on a terminal as files change state."""

    def __init__(self, session: Session) -> None:
        self._session = session
        self._live = session.progress and session.stderr.isatty()
        self.delivery: Delivery | None = None
        """The delivery shown, once it exists."""

    def __call__(self, _file: DeliveryFile) -> None:
        if not self._live or self.delivery is None:
            return
        counts = self.delivery.counts
        shown = ", ".join(f"{counts[state]} {state}" for state in _STATES if counts[state])
        self._session.stderr.write(f"\r\x1b[2Kdelivering: {shown}")
        self._session.stderr.flush()

    def close(self) -> None:
        if self._live:
            self._session.stderr.write("\r\x1b[2K")
            self._session.stderr.flush()


async def deliver_command(session: Session, args: argparse.Namespace) -> int:
    """Run ``deliver``."""
    entries = await asyncio.to_thread(read_manifest, args.manifest)
    source = parse_target(args.source or posixpath.dirname(_absolute(args.manifest)))
    destination = parse_target(args.dst)
    status = _StatusLine(session)
    async with session.configuration.create_manager(shutdown=session.shutdown) as manager:
        delivery = Delivery(
            manager,
            args.manifest,
            entries,
            (source.location(manager), source.path),
            (destination.location(manager), destination.path),
            max_retries=args.max_retries,
            on_change=status,
        )
        status.delivery = delivery
        try:
            await delivery.run()
        finally:
            status.close()
    csv_path = args.csv or _default_csv(session, delivery)
    await asyncio.to_thread(write_text, csv_path, delivery.csv())
    return _report(session, delivery, csv_path)


def _default_csv(session: Session, delivery: Delivery) -> str:
    """``deliveries/delivery-ID.csv`` beside the catalog (the state directory, for an
    in-memory one): never the working directory, which the user did not name."""
    catalog = session.configuration.catalog.path
    home = os.path.dirname(os.path.abspath(default_catalog() if catalog == ":memory:" else catalog))
    name = f"delivery-{delivery.id if delivery.id is not None else 'states'}.csv"
    return os.path.join(home, "deliveries", name)


def _absolute(path: str) -> str:
    return path if path.startswith("/") else f"{os.getcwd()}/{path}"


def _report(session: Session, delivery: Delivery, csv_path: str) -> int:
    counts = delivery.counts
    total = len(delivery.files)
    if session.json:
        session.emit(
            {
                "delivery": delivery.id,
                "nothing_to_do": delivery.nothing_to_do,
                "interrupted": session.interrupted,
                "states": {state: counts[state] for state in _STATES if counts[state]},
                "csv": os.path.abspath(csv_path),
                "files": [
                    {
                        "path": f.entry.relpath,
                        "state": f.state,
                        "retries": f.retries,
                        "message": f.message,
                    }
                    for f in delivery.files
                ],
            }
        )
    elif delivery.nothing_to_do:
        session.say(f"nothing to do: all {total} file(s) already delivered and valid")
    else:
        rows = [[state, counts[state]] for state in _STATES if counts[state]]
        session.say(table(["STATE", "FILES"], rows).rstrip("\n"))
        problems = [f for f in delivery.files if f.state in ("invalid", "failed")]
        for file in problems:
            session.error(f"{file.entry.relpath}: {file.state}: {file.message}")
        session.say(f"states written to {csv_path}")
    if session.interrupted:
        session.error(
            f"interrupted: {counts['valid']} of {total} file(s) valid; run the same command "
            "again to deliver the rest"
        )
        return EXIT_INTERRUPTED
    if counts["valid"] == total:
        return EXIT_OK
    return EXIT_PARTIAL if counts["valid"] else EXIT_FAILED
