"""``streamflow-data cp``: one source, read once, to every destination."""

from __future__ import annotations

import argparse
import posixpath
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from streamflow_data.cli.render import ProgressDisplay, human
from streamflow_data.cli.session import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_PARTIAL,
    EXIT_USAGE,
    USAGE_ERRORS,
    CommandParser,
    Session,
)
from streamflow_data.cli.targets import Target, parse_target
from streamflow_data.connectors.base import FileKind
from streamflow_data.errors import (
    ConfigurationError,
    ConnectorError,
    PathNotFoundError,
    StreamFlowDataError,
    TransferCancelledError,
    TransferError,
)
from streamflow_data.manager import DefaultDataManager

if TYPE_CHECKING:
    from streamflow_data.remote import RemoteDataManager
from streamflow_data.model import ExecutionLocation, normalize_path
from streamflow_data.transfer.events import (
    DestinationProgress,
    TransferListener,
    TransferProgress,
)
from streamflow_data.transfer.plan import plan_transfer

__all__ = ["COMMANDS"]


def _add_cp(commands: Any, common: argparse.ArgumentParser) -> None:
    cp = commands.add_parser(
        "cp",
        parents=[common],
        help="copy a file or directory tree to one or more destinations",
        description=(
            "Copy SRC to every DST, reading SRC once. A DST ending with '/' is a directory "
            "that receives SRC under its own name (DST/NAME); any other DST is the copy "
            "itself, whether it exists or not (a tree merges into an existing directory), "
            "so that running the command again lands in the same place. Modes, "
            "modification times and symbolic links inside trees are kept where the "
            "destination can hold them. An interrupted copy resumes when run again; one "
            "already done says 'nothing to do'."
        ),
    )
    cp.add_argument("src", metavar="SRC", help="the source: DEPLOYMENT[/LOCATION]:PATH or a path")
    cp.add_argument("dst", metavar="DST", nargs="+", help="a destination, written like SRC")
    cp.add_argument(
        "-n", "--dry-run", action="store_true", help="print what would be copied, copy nothing"
    )
    cp.add_argument("--no-progress", action="store_true", help="no progress bar or progress lines")
    cp.add_argument(
        "--independent",
        action="store_true",
        help="record each copy as data of its own, not as a replica of SRC (for copies "
        "that will be changed); by default the catalog knows them as replicas of SRC",
    )
    cp.set_defaults(handler=copy_command)


COMMANDS: dict[str, CommandParser] = {"cp": _add_cp}


@dataclass(slots=True)
class _Outcome:
    """How one destination ended."""

    target: str
    location: ExecutionLocation
    path: str
    error: BaseException | None = None
    progress: TransferProgress | None = None
    """The last snapshot of the copy."""

    @property
    def done(self) -> DestinationProgress | None:
        """This destination's part of the copy; None when it is the source itself."""
        if self.progress is None:
            return None
        return next(
            (
                d
                for d in self.progress.destinations
                if (d.location, d.path) == (self.location, self.path)
            ),
            None,
        )

    @property
    def status(self) -> str:
        if isinstance(self.error, TransferCancelledError):
            return "interrupted"
        if self.error is not None:
            return "failed"
        done = self.done
        if self.progress is None or done is None:
            return "unchanged"  # the destination is the source itself
        nothing = (self.progress.files_total, self.progress.bytes_total)
        skipped = (done.files_skipped, done.bytes_skipped)
        return "nothing to do" if skipped == nothing else "copied"

    def summary(self) -> dict[str, object]:
        progress, done = self.progress, self.done
        checked = None if done is None else done.verification
        return {
            "destination": self.target,
            "status": self.status,
            "files": 0 if done is None else done.files_done,
            "files_total": 0 if progress is None else progress.files_total,
            "bytes": 0 if done is None else done.bytes_done,
            "bytes_moved": 0 if done is None else done.bytes_done - done.bytes_skipped,
            "bytes_total": 0 if progress is None else progress.bytes_total,
            "seconds": 0.0 if progress is None else round(progress.elapsed, 3),
            "transfer": None if progress is None else progress.transfer_id,
            "verification": None if checked is None else checked.value,
            "error": None if self.error is None else str(self.error),
        }


async def _destination_path(
    manager: DefaultDataManager,
    target: Target,
    location: ExecutionLocation,
    src: Target,
    src_kind: FileKind,
) -> str:
    """Where SRC lands for DST: ``DST/NAME`` when DST ends with '/', else DST itself,
    whether it exists or not, so that running the same command again lands in the same
    place (see docs/cli.md). A file onto an existing directory is refused: the user meant
    ``DST/``, or a mistake."""
    if target.trailing_slash:
        return posixpath.join(target.path, posixpath.basename(src.path))
    if src_kind is not FileKind.DIRECTORY:
        connector = manager.connector(location)
        try:
            found = await connector.stat(location, target.path, follow_symlinks=True)
        except ConnectorError:  # missing, or unreachable: the copy itself says what is wrong
            return target.path
        if found.kind is FileKind.DIRECTORY:
            raise ConfigurationError(
                f"{target} is a directory: write {target}/ to copy "
                f"{posixpath.basename(src.path)} into it"
            )
    return target.path


async def copy_command(session: Session, args: argparse.Namespace) -> int:
    """Run ``cp``."""
    src = parse_target(args.src)
    targets = [parse_target(text) for text in args.dst]
    finished: list[TransferProgress] = []

    def remember(progress: TransferProgress) -> None:
        if progress.finished:
            finished.append(progress)

    display: ProgressDisplay | None = None
    if session.progress and not args.dry_run:
        live = session.stderr.isatty()
        display = ProgressDisplay(session.stderr, live=live, interval=0.1 if live else 10.0)
    listeners: list[TransferListener] = [remember] if display is None else [remember, display]
    started = time.monotonic()
    if session.service is not None:
        served = await _copy_through_service(session, args, src, targets, listeners)
        return _finish(session, str(src), served, finished, display, started)
    manager = session.configuration.create_manager(listeners=listeners, shutdown=session.shutdown)
    async with manager:
        src_location = src.location(manager)
        connector = manager.connector(src_location)
        try:
            found = await connector.stat(src_location, src.path, follow_symlinks=True)
        except PathNotFoundError:
            session.error(f"cp: source {args.src!r} does not exist")
            return EXIT_USAGE
        outcomes: list[_Outcome] = []
        for text, target in zip(args.dst, targets, strict=True):
            location = target.location(manager)
            where = await _destination_path(manager, target, location, src, found.kind)
            path = normalize_path(where)
            if all((location, path) != (o.location, o.path) for o in outcomes):
                outcomes.append(_Outcome(text, location, path))
        if args.dry_run:
            plan = await plan_transfer(connector, src_location, src.path)
            done: list[tuple[int, int]] = [(0, 0)] * len(outcomes)
            if manager.catalog is not None:
                pairs = [(o.location, o.path) for o in outcomes]
                done = await manager.catalog.already_valid(
                    src_location, src.path, pairs, plan.files
                )
            return _print_plan(session, str(src), plan.files, plan.total_bytes, outcomes, done)
        manager.register_path(src_location, src.path)
        await _transfer(manager, src_location, src.path, outcomes, args.independent)
    return _finish(session, str(src), outcomes, finished, display, started)


def _finish(
    session: Session,
    src: str,
    outcomes: list[_Outcome],
    finished: list[TransferProgress],
    display: ProgressDisplay | None,
    started: float,
) -> int:
    if display is not None:
        display.close()
    for outcome in outcomes:
        outcome.progress = finished[-1] if finished else None
    return _report(session, src, outcomes, time.monotonic() - started)


async def _copy_through_service(
    session: Session,
    args: argparse.Namespace,
    src: Target,
    targets: list[Target],
    listeners: list[TransferListener],
) -> list[_Outcome]:
    """``cp`` by a running service: its engine, block pool and catalog do the work (the
    service checks the paths; a plain path is one on the service's own node)."""
    if args.dry_run:
        raise ConfigurationError("cp --dry-run is not available with --service")
    async with session.remote(listeners) as manager:
        src_location = src.location(manager)
        outcomes: list[_Outcome] = []
        for text, target in zip(args.dst, targets, strict=True):
            where = target.path
            if target.trailing_slash:
                where = posixpath.join(target.path, posixpath.basename(src.path))
            outcomes.append(_Outcome(text, target.location(manager), normalize_path(where)))
        manager.register_path(src_location, src.path)
        await _transfer(manager, src_location, src.path, outcomes, args.independent)
    return outcomes


async def _transfer(
    manager: DefaultDataManager | RemoteDataManager,
    src_location: ExecutionLocation,
    src_path: str,
    outcomes: list[_Outcome],
    independent: bool,
) -> None:
    """One transfer to every destination: the source is read once. The copies are real
    copies (never links, even beside the source) and, unless ``independent``, replicas of
    the source."""
    targets = [(o.location, o.path) for o in outcomes]
    try:
        await manager.transfer_to(src_location, src_path, targets, independent, links=False)
    except TransferError as exc:
        for failure in exc.failures:
            for outcome in outcomes:
                if (outcome.location, outcome.path) == (failure.location, failure.path):
                    outcome.error = outcome.error or failure.cause
    except StreamFlowDataError as exc:  # the whole call failed: every destination with it
        for outcome in outcomes:
            outcome.error = exc


def _print_plan(
    session: Session,
    src: str,
    files: list[Any],
    total: int,
    outcomes: list[_Outcome],
    done: list[tuple[int, int]],
) -> int:
    """What a real run would do; ``done`` is, per destination, the files and bytes the
    journal says an earlier run left valid there (skipped if they are still there)."""
    destinations = [
        {
            "destination": o.target,
            "location": str(o.location),
            "path": o.path,
            "skip_files": skipped,
            "skip_bytes": skipped_bytes,
        }
        for o, (skipped, skipped_bytes) in zip(outcomes, done, strict=True)
    ]
    if session.json:
        session.emit(
            {
                "dry_run": True,
                "source": src,
                "files": len(files),
                "bytes": total,
                "destinations": destinations,
            }
        )
        return EXIT_OK
    print(f"would copy {src}: {len(files)} file(s), {human(total)}", file=session.stdout)
    for destination, (skipped, skipped_bytes) in zip(destinations, done, strict=True):
        where = f"  -> {destination['location']}:{destination['path']}"
        if skipped == len(files) and files:
            where += ": nothing to do, every file already copied and unchanged"
        elif skipped:
            where += f": would skip {skipped} file(s), {human(skipped_bytes)}, already copied"
        print(where, file=session.stdout)
    print("the source would be read once for every destination", file=session.stdout)
    return EXIT_OK


def _report(session: Session, src: str, outcomes: list[_Outcome], elapsed: float) -> int:
    failed = [o for o in outcomes if o.status == "failed"]
    if session.json:
        session.emit(
            {
                "source": src,
                "seconds": round(elapsed, 3),
                "interrupted": session.interrupted,
                "destinations": [o.summary() for o in outcomes],
            }
        )
    for outcome in outcomes:
        _tell(session, src, outcome)
    if session.interrupted:
        done = sum(o.status in ("copied", "nothing to do", "unchanged") for o in outcomes)
        session.error(
            f"interrupted: {done} of {len(outcomes)} destination(s) finished; run the same "
            "command again to resume the others"
        )
        return EXIT_INTERRUPTED
    if not failed:
        return EXIT_OK
    if any(o.status == "failed" and isinstance(o.error, USAGE_ERRORS) for o in outcomes):
        return EXIT_USAGE
    return EXIT_FAILED if len(failed) == len(outcomes) else EXIT_PARTIAL


def _tell(session: Session, src: str, outcome: _Outcome) -> None:
    where = outcome.target
    progress, done = outcome.progress, outcome.done
    status = outcome.status
    if status == "failed":
        session.error(f"{src} -> {where}: {outcome.error}")
        return
    if status == "interrupted":
        files = 0 if done is None else done.files_done
        total = "?" if progress is None else progress.files_total
        session.error(f"{src} -> {where}: interrupted after {files} of {total} file(s)")
        return
    if progress is None or done is None:
        session.say(f"{src} -> {where}: nothing to copy, the destination is the source")
    elif status == "nothing to do":
        session.say(
            f"{src} -> {where}: nothing to do, all {progress.files_total} file(s) already "
            f"copied and unchanged (transfer {progress.transfer_id})"
        )
    else:
        skipped = done.bytes_skipped
        resumed = f", {human(skipped)} already there" if skipped else ""
        rate = (done.bytes_done - skipped) / progress.elapsed if progress.elapsed > 0 else 0.0
        session.say(
            f"copied {src} -> {where}: {done.files_done} file(s), "
            f"{human(done.bytes_done)} in {progress.elapsed:.2f} s ({human(rate)}/s{resumed})"
        )
