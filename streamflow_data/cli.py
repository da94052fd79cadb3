"""The ``streamflow-data`` command line.

Exit status: 0 when everything was copied, 1 when a transfer failed, 2 for a usage error
(bad arguments, missing source, a destination inside the source, an unusable catalog),
130 when interrupted.

Every command uses a catalog file (``--catalog``, else ``$STREAMFLOW_DATA_CATALOG``, else
``catalog.sqlite`` under the user's state directory): a copy that was interrupted resumes
when run again, and one already done says "nothing to do".
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from collections.abc import Sequence

from streamflow_data import __version__
from streamflow_data.errors import StreamFlowDataError, TransferError
from streamflow_data.manager import DefaultDataManager
from streamflow_data.transfer.events import TransferProgress

__all__ = ["main"]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="streamflow-data",
        description="Track data replicas and move data between execution locations.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "--catalog",
        metavar="PATH",
        default=None,
        help="the catalog file (default: $STREAMFLOW_DATA_CATALOG, else catalog.sqlite in "
        "the user's state directory); ':memory:' keeps nothing",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    cp = commands.add_parser(
        "cp",
        help="copy a file or directory tree to one or more destinations",
        description=(
            "Copy SRC to every DST through the data manager. A DST that is an existing "
            "directory, or ends with '/', receives SRC under its own name, as with cp. "
            "Modes, modification times and symbolic links inside trees are kept."
        ),
    )
    cp.add_argument("src", metavar="SRC", help="source file or directory (local path)")
    cp.add_argument("dst", metavar="DST", nargs="+", help="destination path (local path)")
    cp.add_argument("-q", "--quiet", action="store_true", help="print nothing on success")
    status = commands.add_parser(
        "status", help="list the transfers of the journal, newest first, or show one"
    )
    status.add_argument("transfer", metavar="TRANSFER", type=int, nargs="?")
    dump = commands.add_parser("dump-state", help="write the per-file states of a transfer as CSV")
    dump.add_argument("transfer", metavar="TRANSFER", type=int)
    dump.add_argument("-o", "--output", metavar="FILE", help="write to FILE, not stdout")
    return parser


def default_catalog() -> str:
    """``$STREAMFLOW_DATA_CATALOG``, else ``streamflow-data/catalog.sqlite`` under
    ``$XDG_STATE_HOME`` (``~/.local/state`` when unset)."""
    configured = os.environ.get("STREAMFLOW_DATA_CATALOG")
    if configured:
        return configured
    state = os.environ.get("XDG_STATE_HOME") or os.path.expanduser("~/.local/state")
    return os.path.join(state, "streamflow-data", "catalog.sqlite")


def _destination(src: str, dst: str) -> str:
    target = os.path.abspath(dst)
    if dst.endswith("/") or os.path.isdir(target):
        return os.path.join(target, os.path.basename(src))
    return target


def _human(size: float) -> str:
    units = ["B", "KiB", "MiB", "GiB"]
    while size >= 1024 and len(units) > 1:
        size /= 1024
        units.pop(0)
    return f"{size:.1f} {units[0]}"


async def _copy(catalog: str, src: str, destinations: list[str], quiet: bool) -> int:
    finished: dict[str, TransferProgress] = {}

    def remember(progress: TransferProgress) -> None:
        if progress.finished:
            finished[progress.dst_path] = progress

    async with DefaultDataManager(listeners=[remember], catalog=catalog) as manager:
        local = manager.locations()[0]
        manager.register_path(local, src)
        results: dict[str, BaseException | None] = {}

        async def copy_to(dst: str) -> None:
            try:
                await manager.transfer_data(local, src, [local], dst, writable=True)
                results[dst] = None
            except StreamFlowDataError as exc:
                results[dst] = exc

        async with asyncio.TaskGroup() as group:
            for dst in destinations:
                group.create_task(copy_to(dst))
    status = EXIT_OK
    for dst in destinations:
        error = results[dst]
        if error is not None:
            status = max(status, EXIT_FAILED if isinstance(error, TransferError) else EXIT_USAGE)
            print(f"streamflow-data: {error}", file=sys.stderr)
        elif quiet:
            continue
        elif (done := finished.get(dst)) is None:
            print(f"{src} -> {dst}: nothing to copy, the destination is the source")
        elif done.nothing_to_do:
            print(
                f"{src} -> {dst}: nothing to do, all {done.files_total} file(s) already "
                f"copied and unchanged (transfer {done.transfer_id})"
            )
        else:
            skipped = min(d.bytes_skipped for d in done.destinations)
            resumed = f", {_human(skipped)} already there" if skipped else ""
            print(
                f"copied {src} -> {dst}: {done.files_done} file(s), {_human(done.bytes_done)} "
                f"in {done.elapsed:.2f} s ({_human(done.rate)}/s{resumed})"
            )
    return status


async def _status(catalog: str, transfer: int | None) -> int:
    async with DefaultDataManager(catalog=catalog) as manager:
        records = await manager.transfers(transfer)
    if transfer is not None and not records:
        print(f"streamflow-data: the journal has no transfer {transfer}", file=sys.stderr)
        return EXIT_USAGE
    for record in records:
        updated = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(record.updated))
        print(
            f"{record.id:>6}  {record.state:<9}  {record.files:>7} file(s)  "
            f"{_human(record.bytes):>10}  {updated}  {record.source} -> "
            f"{', '.join(record.destinations)}:{record.dst_path}"
        )
    return EXIT_OK


async def _dump_state(catalog: str, transfer: int, output: str | None) -> int:
    async with DefaultDataManager(catalog=catalog) as manager:
        text = await manager.dump_state(transfer)
    if output is None:
        sys.stdout.write(text)
    else:
        await asyncio.to_thread(_write_text, output, text)
    return EXIT_OK


def _write_text(path: str, text: str) -> None:
    with open(path, "w", encoding="utf-8") as file:
        file.write(text)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = _parser().parse_args(argv)
    catalog = args.catalog or default_catalog()
    if catalog != ":memory:":
        os.makedirs(os.path.dirname(os.path.abspath(catalog)), exist_ok=True)
    try:
        if args.command == "status":
            return asyncio.run(_status(catalog, args.transfer))
        if args.command == "dump-state":
            return asyncio.run(_dump_state(catalog, args.transfer, args.output))
        src = os.path.abspath(args.src)
        if not os.path.lexists(src):
            print(f"streamflow-data: cp: source {args.src!r} does not exist", file=sys.stderr)
            return EXIT_USAGE
        destinations = list(dict.fromkeys(_destination(src, dst) for dst in args.dst))
        return asyncio.run(_copy(catalog, src, destinations, args.quiet))
    except StreamFlowDataError as exc:
        print(f"streamflow-data: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("streamflow-data: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
