"""The ``streamflow-data`` command line.

Exit status: 0 when everything was copied, 1 when a transfer failed, 2 for a usage error
(bad arguments, missing source, a destination inside the source), 130 when interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
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
    return parser


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


async def _copy(src: str, destinations: list[str], quiet: bool) -> int:
    finished: dict[str, TransferProgress] = {}

    def remember(progress: TransferProgress) -> None:
        if progress.finished:
            finished[progress.dst_path] = progress

    async with DefaultDataManager(listeners=[remember]) as manager:
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
        else:
            print(
                f"copied {src} -> {dst}: {done.files_done} file(s), {_human(done.bytes_done)} "
                f"in {done.elapsed:.2f} s ({_human(done.rate)}/s)"
            )
    return status


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = _parser().parse_args(argv)
    src = os.path.abspath(args.src)
    if not os.path.lexists(src):
        print(f"streamflow-data: cp: source {args.src!r} does not exist", file=sys.stderr)
        return EXIT_USAGE
    destinations = list(dict.fromkeys(_destination(src, dst) for dst in args.dst))
    try:
        return asyncio.run(_copy(src, destinations, args.quiet))
    except StreamFlowDataError as exc:
        print(f"streamflow-data: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("streamflow-data: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
