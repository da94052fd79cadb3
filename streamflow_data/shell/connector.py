"""A connector for hosts reached through a shell: every operation is a command.

:class:`ShellConnector` does everything with the commands of a POSIX host and asks its
subclass for one thing, the :class:`~streamflow_data.shell.transport.CommandTransport`
that runs them on a location (SSH, a container's ``exec``, a batch system's job shell).

The host needs a POSIX shell with GNU coreutils, find and tar (any Linux distribution),
and for verified writes one of ``openssl``, ``sha256sum`` or ``shasum``. Metadata
operations are one command each; big files move through the ``dd`` lanes of
:mod:`~streamflow_data.shell.lanes`, batches of small files through
:mod:`~streamflow_data.shell.packing`; copies within a host run ``cp`` there.
"""

from __future__ import annotations

import abc
import asyncio
import dataclasses
from collections.abc import AsyncIterator, Awaitable, Sequence
from dataclasses import dataclass

from streamflow_data.connectors.base import (
    Capabilities,
    Connector,
    CopyItem,
    FileKind,
    FileStat,
    LinkItem,
    MetadataItem,
    WalkEntry,
    WriteItem,
)
from streamflow_data.connectors.localcopy import CopyEvents, LocalFile
from streamflow_data.connectors.metadata import MetadataCache
from streamflow_data.connectors.openfiles import Reader, Writer
from streamflow_data.errors import ConnectorError, PathNotFoundError, UnsupportedOperationError
from streamflow_data.location import ExecutionLocation
from streamflow_data.model import Digest, Verification, check_partial_file, temporary_name
from streamflow_data.shell.commands import (
    EXIT_DENIED,
    EXIT_EXISTS,
    EXIT_MISMATCH,
    EXIT_NOT_DIRECTORY,
    EXIT_NOT_FOUND,
    Completed,
    command_error,
    decimal_seconds,
    metadata_commands,
    metadata_script,
    path_list,
    quote,
)
from streamflow_data.shell.handover import CRC_LEAD, Handover
from streamflow_data.shell.packing import (
    EXIT_NOT_DIRECTORIES,
    hashed_files,
    pack_directories,
    pack_writes,
    read_archive,
    read_command,
    write_results,
)
from streamflow_data.shell.reader import ShellReader, identity_command
from streamflow_data.shell.transport import CommandTransport
from streamflow_data.shell.writer import ShellWriter

__all__ = ["HostTools", "ShellConnector"]

_KINDS = {b"f": FileKind.FILE, b"d": FileKind.DIRECTORY, b"l": FileKind.SYMLINK}
_FORMAT = r"%y\0%s\0%m\0%T@\0%P\0%l\0"
_FIELDS = 6


def _stat_of(fields: Sequence[bytes]) -> FileStat | None:
    """A FileStat from find's ``%y %s %m %T@ %P %l`` fields (None for other file types),
    parsed as bytes: a walk parses one per entry."""
    kind = _KINDS.get(fields[0])
    if kind is None:
        return None
    seconds, _, fraction = fields[3].partition(b".")
    mtime_ns = int(seconds) * 1_000_000_000 + int((fraction + b"000000000")[:9])
    target = fields[5].decode(errors="surrogateescape") if kind is FileKind.SYMLINK else None
    size = int(fields[1]) if kind is not FileKind.DIRECTORY else 0
    return FileStat(kind, size, int(fields[2], 8), mtime_ns, target)


_HASH_TOOLS = {
    "openssl": "openssl dgst -sha256 -r",
    "sha256sum": "sha256sum -b",
    "shasum": "shasum -a 256 -b",
}
_PROBE = "umask; for t in openssl sha256sum shasum; do command -v $t >/dev/null && echo $t; done"


@dataclass(frozen=True, slots=True)
class HostTools:
    """What a host offers, probed once per location."""

    umask: int
    hash_command: str | None
    """The command printing the SHA-256 of its input, or None if the host has none."""
    sha256sum: bool
    """Whether ``sha256sum`` itself is there (it hashes a list of files at once)."""


class ShellConnector(Connector):
    """The locations of a deployment whose hosts run our commands (see the module).

    A subclass implements :meth:`locations` and :meth:`transport`, and :meth:`close`
    where its transports hold connections. With ``verify``, the host hashes the bytes it
    receives and the hash is compared with that of the bytes sent
    (:attr:`~streamflow_data.model.Verification.RECEIVED`); otherwise a big file's stored
    size is compared and a small file's bytes are checksummed as sent.
    """

    capabilities = Capabilities(ranged_writes=True, server_side_copy=True, atomic_directories=True)

    def __init__(self, *, verify: bool = False, metadata_ttl: float = 0.0) -> None:
        self.verify = verify
        """Whether the host hashes what it receives (it needs a hash tool)."""
        hashed = Verification.RECEIVED if verify else Verification.SENT
        self.capabilities = dataclasses.replace(type(self).capabilities, verification=hashed)
        """As the class says, but what small-file writes prove (see :attr:`verify`)."""
        self._metadata = MetadataCache(metadata_ttl)
        self._tools: dict[str, HostTools] = {}

    @abc.abstractmethod
    def transport(self, location: ExecutionLocation) -> CommandTransport:
        """The transport running commands on ``location``; raises
        :class:`~streamflow_data.errors.UnknownLocationError` for a location this connector
        does not serve."""

    async def warm_up(self, location: ExecutionLocation) -> None:
        """As the location's transport does (see :meth:`CommandTransport.warm_up`)."""
        await self.transport(location).warm_up()

    def chunk_streams(self, location: ExecutionLocation) -> int | None:
        """As the location's transport says (see :meth:`CommandTransport.chunk_streams`)."""
        return self.transport(location).chunk_streams()

    def batch_streams(self, location: ExecutionLocation) -> int | None:
        """As the location's transport says (see :meth:`CommandTransport.batch_streams`)."""
        return self.transport(location).batch_streams()

    async def tools(self, location: ExecutionLocation) -> HostTools:
        """The host's umask and hash tools, probed on first use."""
        tools = self._tools.get(location.name)
        if tools is None:
            lines = (await self.transport(location).check(_PROBE, "")).decode().split()
            try:
                umask = int(lines[0], 8)
            except (IndexError, ValueError):
                raise ConnectorError(location, "", f"unexpected shell reply {lines}") from None
            found = [_HASH_TOOLS[name] for name in lines[1:] if name in _HASH_TOOLS]
            tools = HostTools(umask, found[0] if found else None, "sha256sum" in lines[1:])
            self._tools[location.name] = tools
        return tools

    async def _hash_command(self, location: ExecutionLocation) -> str | None:
        if not self.verify:
            return None
        tools = await self.tools(location)
        if tools.hash_command is None:
            raise UnsupportedOperationError(
                location,
                "",
                "verified writes need openssl, sha256sum or shasum on the host; "
                "install one or turn verification off",
            )
        return tools.hash_command

    # -- metadata ---------------------------------------------------------------------------

    async def stat(
        self, location: ExecutionLocation, path: str, *, follow_symlinks: bool = False
    ) -> FileStat:
        return await self._metadata.stated(
            location, path, follow_symlinks, lambda: self._stat(location, path, follow_symlinks)
        )

    async def _stat(
        self, location: ExecutionLocation, path: str, follow_symlinks: bool
    ) -> FileStat:
        fmt = _FORMAT.replace("%y", "%Y") if follow_symlinks else _FORMAT
        find = "find -L" if follow_symlinks else "find"
        output = await self.transport(location).check(
            f"{find} {quote(path)} -maxdepth 0 -printf '{fmt}'", path
        )
        fields = output.split(b"\0")
        if fields[0] in (b"N", b"L"):  # a link to nothing, or a loop
            raise PathNotFoundError(location, path, "a link to nothing")
        stat = _stat_of(fields[:_FIELDS]) if len(fields) > _FIELDS else None
        if stat is None:
            raise ConnectorError(location, path, "neither a file, a directory nor a link")
        return stat

    async def walk(self, location: ExecutionLocation, path: str) -> AsyncIterator[WalkEntry]:
        for entry in await self._metadata.walked(
            location, path, lambda: self._walk(location, path)
        ):
            yield entry

    async def _walk(self, location: ExecutionLocation, path: str) -> tuple[WalkEntry, ...]:
        check = (
            f"[ -d {quote(path)} ] || {{ [ -e {quote(path)} ] && exit {EXIT_NOT_DIRECTORY}; "
            f"exit {EXIT_NOT_FOUND}; }}"
        )
        output = await self.transport(location).check(
            f"{check}; find -H {quote(path)} -mindepth 1 -printf '{_FORMAT}'", path
        )
        fields = iter(output.split(b"\0"))
        entries = []
        # Each record's six fields in turn; a trailing part of a record is no entry.
        for record in zip(*[fields] * _FIELDS, strict=False):
            stat = _stat_of(record)
            if stat is not None:
                entries.append(WalkEntry(record[4].decode(errors="surrogateescape"), stat))
        return tuple(entries)

    # -- files ------------------------------------------------------------------------------

    async def open_reader(self, location: ExecutionLocation, path: str) -> Reader:
        transport = self.transport(location)
        quoted = quote(path)
        identity = await transport.check(
            f"[ -d {quoted} ] && exit {EXIT_EXISTS}; [ -f {quoted} ] || exit {EXIT_NOT_FOUND}; "
            f"[ -r {quoted} ] || exit {EXIT_DENIED}; {identity_command(path)}",
            path,
        )
        return ShellReader(transport, path, identity, checked=self.verify)

    async def open_writer(
        self,
        location: ExecutionLocation,
        path: str,
        *,
        mode: int | None = None,
        mtime_ns: int | None = None,
        atomic: bool = True,
    ) -> Writer:
        return await ShellWriter.create(await self._writer(location, path, mode, mtime_ns, atomic))

    async def resume_writer(
        self,
        location: ExecutionLocation,
        path: str,
        token: str,
        *,
        mode: int | None = None,
        mtime_ns: int | None = None,
        atomic: bool = True,
    ) -> Writer:
        """Continue the partial file ``token`` (a temporary of ``path``, or ``path`` itself
        inside a staging tree); its earlier bytes are read back for the digest."""
        check_partial_file(token, path, atomic)
        await self.transport(location).check(
            f"[ -f {quote(token)} ] || exit {EXIT_NOT_FOUND}", path
        )
        return await self._writer(location, path, mode, mtime_ns, atomic, resumed=token)

    async def _writer(
        self,
        location: ExecutionLocation,
        path: str,
        mode: int | None,
        mtime_ns: int | None,
        atomic: bool,
        resumed: str | None = None,
    ) -> ShellWriter:
        return ShellWriter(
            self.transport(location),
            location,
            path,
            mode=mode,
            mtime_ns=mtime_ns,
            atomic=atomic,
            hash_command=await self._hash_command(location),
            published=lambda: self._metadata.changed(location, [path]),
            resumed=resumed,
        )

    def put_file(
        self, writer: Writer, source: LocalFile, events: CopyEvents
    ) -> Awaitable[None] | None:
        """Ranges of the local file handed to the host's ``dd`` (see
        :mod:`~streamflow_data.shell.handover`) where the transport hands files over and
        the host does not hash what it receives; else the engine's blocks. A file put to
        several destinations at once (its ``checksums`` shared) is handed over up to
        :data:`~streamflow_data.shell.handover.CRC_LEAD`: each host's transport reads it
        at its own pace, and within that span the storage is read once whatever the
        paces, as the checksum's lead assumes; a larger one goes by blocks, at the
        slowest destination's pace."""
        read_once = source.checksums is None or source.size <= CRC_LEAD
        if isinstance(writer, ShellWriter) and writer.hands_over and read_once:
            return Handover(source, events).upload(writer)
        return None

    def get_file(
        self, reader: Reader, destination: LocalFile, events: CopyEvents
    ) -> Awaitable[None] | None:
        """Ranges the host's ``dd`` reads, poured into the local file (see
        :mod:`~streamflow_data.shell.handover`) unless ``verify`` is on; then the engine's
        blocks, each checksummed here."""
        if isinstance(reader, ShellReader) and reader.pours:
            return Handover(destination, events).download(reader)
        return None

    async def write_files(
        self, location: ExecutionLocation, items: Sequence[WriteItem]
    ) -> list[ConnectorError | None]:
        """One ``tar x`` per batch (see :mod:`~streamflow_data.shell.packing`)."""
        return await self._write(location, items)

    async def _write(
        self, location: ExecutionLocation, items: Sequence[WriteItem]
    ) -> list[ConnectorError | None]:
        transport = self.transport(location)
        # The host's umask makes the mode of files that come without one; the engine's
        # come with theirs, and then the probe's round trip is not paid.
        umask = 0
        if any(item.mode is None for item in items):
            umask = (await self.tools(location)).umask
        hash_command = await self._hash_command(location)
        batches, outcomes = await asyncio.to_thread(
            pack_writes, location, items, umask, hash_command
        )
        results: dict[int, ConnectorError | None] = dict(outcomes)
        try:
            for batch in batches:
                path = items[batch.indexes[0]].path
                result = await transport.run(batch.script, path, batch.archive)
                results.update(write_results(location, items, batch, result))
        finally:
            self._metadata.changed(location, [item.path for item in items])
        return [results[index] for index in range(len(items))]

    async def write_file(
        self,
        location: ExecutionLocation,
        path: str,
        data: bytes | memoryview,
        *,
        mode: int | None = None,
        mtime_ns: int | None = None,
        expected: Digest | None = None,
        atomic: bool = True,
    ) -> None:
        """A whole small file in one round trip (a batch of one)."""
        item = WriteItem(path, data, mode=mode, mtime_ns=mtime_ns, expected=expected, atomic=atomic)
        [error] = await self._write(location, [item])
        if error is not None:
            raise error

    async def read_files(
        self, location: ExecutionLocation, paths: Sequence[str]
    ) -> list[bytes | ConnectorError]:
        """One ``tar c`` for all of ``paths``."""
        return await self._read(location, paths)

    async def _read(
        self, location: ExecutionLocation, paths: Sequence[str]
    ) -> list[bytes | ConnectorError]:
        if not paths:
            return []
        result = await self.transport(location).run_for_output(read_command(paths), paths[0])
        return await asyncio.to_thread(read_archive, location, paths, result)

    async def sha256_files(
        self, location: ExecutionLocation, paths: Sequence[str]
    ) -> list[str | ConnectorError]:
        """One ``sha256sum`` on the host for all of ``paths``: only the digests cross the
        network (the files are read back here where the host has no ``sha256sum``)."""
        if not paths or not (await self.tools(location)).sha256sum:
            return await super().sha256_files(location, paths)
        command = "xargs -0 sha256sum -z --"
        result = await self.transport(location).run(command, paths[0], path_list(paths))
        return hashed_files(location, paths, result)

    async def read_file(self, location: ExecutionLocation, path: str) -> bytes:
        """A ``tar c`` of one file."""
        [content] = await self._read(location, [path])
        if isinstance(content, ConnectorError):
            raise content
        return content

    # -- directories, links, metadata -------------------------------------------------------

    async def mkdir(self, location: ExecutionLocation, path: str) -> None:
        try:
            await self.transport(location).check(f"mkdir -p -- {quote(path)}", path, what="mkdir")
        finally:
            self._metadata.changed(location, [path])

    async def make_directories(self, location: ExecutionLocation, paths: Sequence[str]) -> None:
        """One ``mkdir -p`` for all of ``paths`` (the list goes on standard input)."""
        if paths:
            try:
                await self.transport(location).check(
                    "xargs -0 mkdir -p --", paths[0], path_list(paths), "mkdir"
                )
            finally:
                self._metadata.changed(location, paths)

    async def remove(self, location: ExecutionLocation, path: str) -> None:
        try:
            await self.transport(location).check(f"rm -rf -- {quote(path)}", path, what="rm")
        finally:
            self._metadata.changed_tree(location)

    async def symlink(
        self, location: ExecutionLocation, target: str, path: str, *, mtime_ns: int | None = None
    ) -> None:
        await self._links(location, [LinkItem(target, path, mtime_ns)])

    async def make_symlinks(self, location: ExecutionLocation, items: Sequence[LinkItem]) -> None:
        """Each link made under a temporary name, given its time (``touch -h``), and renamed
        over ``path``: atomic. One command for all."""
        await self._links(location, items)

    async def _links(self, location: ExecutionLocation, items: Sequence[LinkItem]) -> None:
        commands = []
        for item in items:
            temporary = temporary_name(item.path)
            timed = ""
            if item.mtime_ns is not None:
                timed = f"touch -h -d @{decimal_seconds(item.mtime_ns)} -- {quote(temporary)} && "
            made = f"ln -s -- {quote(item.target)} {quote(temporary)}"
            commands.append(f"{made} && {timed}mv -fT -- {quote(temporary)} {quote(item.path)}")
        if commands:
            try:
                command = " && ".join(commands)
                await self.transport(location).check(command, items[0].path, what="ln")
            finally:
                self._metadata.changed(location, [item.path for item in items])

    async def set_metadata(
        self,
        location: ExecutionLocation,
        path: str,
        *,
        mode: int | None = None,
        mtime_ns: int | None = None,
    ) -> None:
        await self._apply(location, [MetadataItem(path, mode, mtime_ns)])

    async def apply_metadata(
        self, location: ExecutionLocation, items: Sequence[MetadataItem]
    ) -> None:
        """One ``tar x`` for directories (see :func:`.pack_directories`), else one script
        of ``touch`` and ``chmod`` for all of ``items``."""
        await self._apply(location, items)

    async def _apply(
        self,
        location: ExecutionLocation,
        items: Sequence[MetadataItem],
        then: tuple[str, str] | None = None,
    ) -> bool:
        """As :meth:`apply_metadata` says; with ``then``, a command (and the path its
        failure is about) the directories' last ``tar x`` runs once it has unpacked: True
        if it ran (every item a directory)."""
        wanted = _metadata_wanted(items)
        if not wanted:
            return False
        transport = self.transport(location)
        try:
            if await self._unpack_directories(transport, wanted, then):
                return then is not None
            script = metadata_script(wanted).encode("utf-8", "surrogateescape")
            await transport.check("sh -s", wanted[0][0], script)
            return False
        finally:
            if then is None:
                self._metadata.changed(location, [item.path for item in items])
            else:
                self._metadata.changed_tree(location)

    async def _unpack_directories(
        self,
        transport: CommandTransport,
        items: Sequence[tuple[str, int | None, int | None]],
        then: tuple[str, str] | None = None,
    ) -> bool:
        """Give directories their metadata by unpacking them, the last script running
        ``then`` (see :meth:`_apply`); False when some item is not an existing directory,
        before anything changed."""
        command, path = then if then is not None else (None, items[0][0])
        packed = await asyncio.to_thread(pack_directories, items, command)
        if packed is None:
            return False
        for script, archive in packed:
            result = await transport.run(script, items[0][0], archive)
            if result.status == EXIT_NOT_DIRECTORIES:
                return False
            if result.status != 0:
                what = "tar" if then is None else "tar or the command after it"
                raise command_error(result, transport.location, path, what)
        return True

    async def rename(self, location: ExecutionLocation, src: str, dst: str) -> None:
        try:
            await self.transport(location).check(_rename_command(src, dst), src, what="mv")
        finally:
            self._metadata.changed_tree(location)

    async def finish_tree(
        self,
        location: ExecutionLocation,
        items: Sequence[MetadataItem],
        staged: str | None,
        path: str,
    ) -> None:
        """The directories' metadata as :meth:`apply_metadata` gives it, the rename run by
        its last ``tar x`` (see :func:`.pack_directories`): no command of its own where
        the items are directories unpacked with their mode and time; else after."""
        if staged is None:
            await self._apply(location, items)
        elif not await self._apply(location, items, (_rename_command(staged, path), staged)):
            await self.rename(location, staged, path)

    # -- copies on the host -----------------------------------------------------------------

    async def copy(
        self,
        location: ExecutionLocation,
        src: str,
        dst: str,
        *,
        mode: int | None = None,
        mtime_ns: int | None = None,
        size: int | None = None,
        atomic: bool = True,
    ) -> None:
        item = CopyItem(src, dst, mode=mode, mtime_ns=mtime_ns, size=size, atomic=atomic)
        [error] = await self._copy(location, [item])
        if error is not None:
            raise error

    async def copy_files(
        self, location: ExecutionLocation, items: Sequence[CopyItem]
    ) -> list[ConnectorError | None]:
        """``cp`` on the host for each file, in one script; the output says which failed."""
        return await self._copy(location, items)

    async def _copy(
        self, location: ExecutionLocation, items: Sequence[CopyItem]
    ) -> list[ConnectorError | None]:
        lines = []
        for number, item in enumerate(items):
            written = temporary_name(item.dst) if item.atomic else item.dst
            steps = [
                f"[ -f {quote(item.src)} ] || exit {EXIT_NOT_FOUND}",
                f"cp --reflink=auto -- {quote(item.src)} {quote(written)}",
            ]
            if item.size is not None:
                steps.append(
                    f'[ "$(stat -c %s -- {quote(written)})" = {item.size} ] || exit {EXIT_MISMATCH}'
                )
            steps.extend(metadata_commands(written, item.mode, item.mtime_ns))
            if item.atomic:
                steps.append(f"mv -fT -- {quote(written)} {quote(item.dst)}")
            body = " && ".join(steps)
            lines.append(
                f"err=$( ( {body} ) 2>&1 >/dev/null ) || {{ s=$?; rm -f -- {quote(written)}; "
                f'printf "%s %s %s\\n" {number} $s "$(printf %s "$err" | tr "\\n" " ")"; }}'
            )
        if not lines:
            return []
        try:
            output = await self.transport(location).check("\n".join(lines), items[0].src)
        finally:
            self._metadata.changed(location, [item.dst for item in items])
        return _copy_results(location, items, output.decode(errors="replace"))


def _copy_results(
    location: ExecutionLocation, items: Sequence[CopyItem], output: str
) -> list[ConnectorError | None]:
    results: list[ConnectorError | None] = [None] * len(items)
    for line in output.splitlines():
        number, status, message = [*line.split(" ", 2), "", ""][:3]
        item = items[int(number)]
        path = item.src if int(status) == EXIT_NOT_FOUND else item.dst
        results[int(number)] = command_error(Completed(int(status), b"", message), location, path)
    return results


def _rename_command(src: str, dst: str) -> str:
    """``mv`` of ``src`` to ``dst`` itself, never into it."""
    return f"mv -T -- {quote(src)} {quote(dst)}"


def _metadata_wanted(items: Sequence[MetadataItem]) -> list[tuple[str, int | None, int | None]]:
    """(path, mode, mtime_ns) of the items that set something."""
    return [(i.path, i.mode, i.mtime_ns) for i in items if (i.mode, i.mtime_ns) != (None, None)]
