"""Turning a source path into the work of a transfer: directories, files and links."""

from __future__ import annotations

import dataclasses
import stat
from dataclasses import dataclass, field

from streamflow_data.connectors.base import Connector, FileKind, FileStat, WalkEntry
from streamflow_data.errors import PathNotFoundError, UnsafePathError
from streamflow_data.model import ExecutionLocation, is_temporary_name, relpath_fault

__all__ = ["LinkTargets", "TransferPlan", "join", "link_targets", "plan_transfer", "without_setid"]


def join(base: str, relpath: str) -> str:
    """``base/relpath``, or ``base`` itself for the root (empty ``relpath``)."""
    if not relpath:
        return base
    return f"{base.rstrip('/')}/{relpath}"


@dataclass(slots=True)
class TransferPlan:
    """What one source path holds, in the order a copy must create it.

    A link at the root is followed (the data is what is transferred); links inside a
    directory are kept as links.
    """

    root: FileStat
    """The source path itself."""
    directories: list[WalkEntry] = field(default_factory=list)
    """Directories below the root, parents before children."""
    files: list[WalkEntry] = field(default_factory=list)
    """Regular files; for a file root, the single entry with an empty ``relpath``."""
    links: list[WalkEntry] = field(default_factory=list)
    """Symbolic links below the root."""
    unlinked: list[tuple[WalkEntry, str]] = field(default_factory=list)
    """Links left out of a plan without links: to a directory or to nothing (which)."""

    @property
    def total_bytes(self) -> int:
        """The bytes of all files."""
        return sum(entry.stat.size for entry in self.files)


_SETID = stat.S_ISUID | stat.S_ISGID


def without_setid(found: FileStat) -> FileStat:
    """``found`` without the setuid and setgid bits (see ``TransferSettings.keep_setid``)."""
    if found.mode & _SETID:
        return dataclasses.replace(found, mode=found.mode & ~_SETID)
    return found


async def plan_transfer(
    connector: Connector,
    location: ExecutionLocation,
    path: str,
    *,
    keep_setid: bool = False,
    links: bool = True,
) -> TransferPlan:
    """List what must be copied from ``path`` on ``location``; files lose their setuid
    and setgid bits unless ``keep_setid``. Without ``links`` (for storage that keeps
    none), a link to a file is planned as that file, and other links are left out.

    Every name the connector lists is checked before anything is written: one that is not
    a plain relative path fails the whole transfer with :class:`UnsafePathError`, since
    a listing that holds one cannot be trusted for the rest. What interrupted transfers
    left (temporary names: partial files, staging trees, markers) is not copied.
    """
    root = await connector.stat(location, path, follow_symlinks=True)
    plan = TransferPlan(root)
    if root.kind is not FileKind.DIRECTORY:
        plan.files.append(WalkEntry("", root if keep_setid else without_setid(root)))
        return plan
    by_kind = {
        FileKind.DIRECTORY: plan.directories,
        FileKind.FILE: plan.files,
        FileKind.SYMLINK: plan.links,
    }
    async for entry in connector.walk(location, path):
        fault = relpath_fault(entry.relpath)
        if fault is not None:
            raise UnsafePathError(location, join(path, entry.relpath), f"listed with {fault}")
        if ".sfd-part" in entry.relpath and any(
            is_temporary_name(part) for part in entry.relpath.split("/")
        ):
            continue  # what an interrupted transfer left (a partial file, a marker): not data
        if entry.stat.kind is FileKind.FILE and not keep_setid:
            entry = WalkEntry(entry.relpath, without_setid(entry.stat))
        by_kind[entry.stat.kind].append(entry)
    if not links:
        found = await link_targets(connector, location, path, plan.links, keep_setid=keep_setid)
        plan.files += found.files
        plan.links, plan.unlinked = [], found.skipped
    return plan


@dataclass(slots=True)
class LinkTargets:
    """What the links of a plan point to, for storage that keeps no links."""

    files: list[WalkEntry] = field(default_factory=list)
    """Links to regular files, as files with their target's metadata (read through the
    link)."""
    skipped: list[tuple[WalkEntry, str]] = field(default_factory=list)
    """Links to a directory or to nothing, with which of the two."""


async def link_targets(
    connector: Connector,
    location: ExecutionLocation,
    path: str,
    links: list[WalkEntry],
    *,
    keep_setid: bool = False,
) -> LinkTargets:
    """Follow each of ``links`` (below ``path``) to what it points to."""
    found = LinkTargets()
    for entry in links:
        try:
            target = await connector.stat(location, join(path, entry.relpath), follow_symlinks=True)
        except PathNotFoundError:
            found.skipped.append((entry, "nothing"))
            continue
        if target.kind is not FileKind.FILE:
            found.skipped.append((entry, "a directory"))
            continue
        found.files.append(
            WalkEntry(entry.relpath, target if keep_setid else without_setid(target))
        )
    return found
