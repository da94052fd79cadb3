"""The SSH connector: every node of a deployment is a location reached with asyncssh
(and, for the bytes of big files, OpenSSH's ``ssh``: see :mod:`~streamflow_data_ssh.openssh`).

The host needs a POSIX shell with GNU coreutils, find and tar (any Linux distribution),
and for verified writes one of ``openssl``, ``sha256sum`` or ``shasum``. Metadata
operations are one remote command each; big files move through
:mod:`~streamflow_data_ssh.streams`, batches of small files through
:mod:`~streamflow_data_ssh.packing`; copies within a host run ``cp`` there.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Self

from streamflow_data.sdk import (
    Capabilities,
    Connector,
    ConnectorError,
    CopyItem,
    Digest,
    ExecutionLocation,
    FileKind,
    FileStat,
    LinkItem,
    MetadataCache,
    MetadataItem,
    PathNotFoundError,
    Reader,
    UnknownLocationError,
    UnsupportedOperationError,
    Verification,
    WalkEntry,
    WriteItem,
    Writer,
    check_partial_file,
    parse_options,
    temporary_name,
)
from streamflow_data_ssh.options import SSHOptions
from streamflow_data_ssh.packing import (
    EXIT_NOT_DIRECTORIES,
    hashed_files,
    pack_directories,
    pack_writes,
    read_archive,
    read_command,
    write_results,
)
from streamflow_data_ssh.pool import NodePool, StreamCounts
from streamflow_data_ssh.remote import (
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
    q,
)
from streamflow_data_ssh.streams import SSHReader, SSHWriter, identity_command

__all__ = ["SSHConnector"]

_KINDS = {"f": FileKind.FILE, "d": FileKind.DIRECTORY, "l": FileKind.SYMLINK}
_FORMAT = r"%y\0%s\0%m\0%T@\0%P\0%l\0"
_FIELDS = 6


def _stat_of(fields: Sequence[bytes]) -> FileStat | None:
    """A FileStat from find's ``%y %s %m %T@ ... %l`` fields (None for other file types)."""
    kind = _KINDS.get(fields[0].decode())
    if kind is None:
        return None
    seconds, _, fraction = fields[3].decode().partition(".")
    mtime_ns = int(seconds) * 1_000_000_000 + int((fraction + "000000000")[:9])
    target = fields[5].decode(errors="surrogateescape") if kind is FileKind.SYMLINK else None
    size = int(fields[1]) if kind is not FileKind.DIRECTORY else 0
    return FileStat(kind, size, int(fields[2], 8), mtime_ns, target)


class SSHConnector(Connector):
    """The nodes of an SSH deployment, each one location (see :class:`SSHOptions`)."""

    capabilities = Capabilities(ranged_writes=True, server_side_copy=True, atomic_directories=True)

    def __init__(self, options: SSHOptions) -> None:
        self.options = options
        """The validated options this connector runs with."""
        hashed = Verification.RECEIVED if options.verify == "sha256" else Verification.SENT
        self.capabilities = dataclasses.replace(type(self).capabilities, verification=hashed)
        """As the class says, but what small-file writes prove: the host hashes the bytes
        it receives with ``verify = "sha256"``."""
        self._pools: dict[str, NodePool] = {}
        self._metadata = MetadataCache(options.metadata_ttl)

    @classmethod
    def from_options(cls, options: Mapping[str, object]) -> Self:
        """Build from a mapping of :class:`SSHOptions` fields."""
        return cls(parse_options(SSHOptions, options, "ssh connector"))

    def locations(self, deployment: str) -> Sequence[ExecutionLocation]:
        """One location per node, named by :attr:`NodeOptions.location_name`."""
        return tuple(
            ExecutionLocation(deployment, node.location_name, hostname=node.hostname)
            for node in self.options.nodes
        )

    def _pool(self, location: ExecutionLocation) -> NodePool:
        pool = self._pools.get(location.name)
        if pool is None:
            node = next((n for n in self.options.nodes if n.location_name == location.name), None)
            if node is None:
                known = [n.location_name for n in self.options.nodes]
                raise UnknownLocationError(location, known)
            pool = self._pools[location.name] = NodePool(node, self.options, location)
        return pool

    def chunk_streams(self, location: ExecutionLocation) -> int | None:
        """One stream per 2 ms of the node's round trip, measured when it first connects."""
        return self._pool(location).chunk_streams()

    def channels_opened(self, location: ExecutionLocation) -> int:
        """Remote commands started on ``location`` so far (each at least one round trip):
        for diagnostics and benchmarks."""
        return self._pool(location).channels_opened

    def streams_opened(self, location: ExecutionLocation) -> StreamCounts:
        """The byte streams of big files carried to and from ``location`` so far, by SSH
        client (see :attr:`SSHOptions.streams`): for diagnostics and benchmarks."""
        return dataclasses.replace(self._pool(location).streams)

    async def _hash_command(self, pool: NodePool) -> str | None:
        if self.options.verify == "none":
            return None
        tools = await pool.tools()
        if tools.hash_command is None:
            raise UnsupportedOperationError(
                pool.location,
                "",
                "verified writes need openssl, sha256sum or shasum on the host; "
                "install one or set verify = 'none'",
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
        output = await self._pool(location).check(
            f"{find} {q(path)} -maxdepth 0 -printf '{fmt}'", path
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
            f"[ -d {q(path)} ] || {{ [ -e {q(path)} ] && exit {EXIT_NOT_DIRECTORY}; "
            f"exit {EXIT_NOT_FOUND}; }}"
        )
        output = await self._pool(location).check(
            f"{check}; find -H {q(path)} -mindepth 1 -printf '{_FORMAT}'", path
        )
        fields = output.split(b"\0")
        entries = []
        for start in range(0, len(fields) - _FIELDS + 1, _FIELDS):
            record = fields[start : start + _FIELDS]
            stat = _stat_of(record)
            if stat is not None:
                entries.append(WalkEntry(record[4].decode(errors="surrogateescape"), stat))
        return tuple(entries)

    # -- files ------------------------------------------------------------------------------

    async def open_reader(self, location: ExecutionLocation, path: str) -> Reader:
        pool = self._pool(location)
        quoted = q(path)
        identity = await pool.check(
            f"[ -d {quoted} ] && exit {EXIT_EXISTS}; [ -f {quoted} ] || exit {EXIT_NOT_FOUND}; "
            f"[ -r {quoted} ] || exit {EXIT_DENIED}; {identity_command(path)}",
            path,
        )
        return SSHReader(pool, path, identity)

    async def open_writer(
        self,
        location: ExecutionLocation,
        path: str,
        *,
        mode: int | None = None,
        mtime_ns: int | None = None,
        atomic: bool = True,
    ) -> Writer:
        writer = await self._writer(location, path, mode, mtime_ns, atomic)
        return await SSHWriter.create(writer.pool, writer)

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
        await self._pool(location).check(f"[ -f {q(token)} ] || exit {EXIT_NOT_FOUND}", path)
        return await self._writer(location, path, mode, mtime_ns, atomic, resumed=token)

    async def _writer(
        self,
        location: ExecutionLocation,
        path: str,
        mode: int | None,
        mtime_ns: int | None,
        atomic: bool,
        resumed: str | None = None,
    ) -> SSHWriter:
        pool = self._pool(location)
        return SSHWriter(
            pool,
            location,
            path,
            mode=mode,
            mtime_ns=mtime_ns,
            atomic=atomic,
            hash_command=await self._hash_command(pool),
            published=lambda: self._metadata.changed(location, [path]),
            resumed=resumed,
        )

    async def write_files(
        self, location: ExecutionLocation, items: Sequence[WriteItem]
    ) -> list[ConnectorError | None]:
        """One ``tar x`` per batch (see :mod:`~streamflow_data_ssh.packing`)."""
        pool = self._pool(location)
        tools = await pool.tools()
        hash_command = await self._hash_command(pool)
        batches, outcomes = await asyncio.to_thread(
            pack_writes, location, items, tools.umask, hash_command
        )
        results: dict[int, ConnectorError | None] = dict(outcomes)
        try:
            for batch in batches:
                result = await pool.run(batch.script, items[batch.indexes[0]].path, batch.archive)
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
        [error] = await self.write_files(location, [item])
        if error is not None:
            raise error

    async def read_files(
        self, location: ExecutionLocation, paths: Sequence[str]
    ) -> list[bytes | ConnectorError]:
        """One ``tar c`` for all of ``paths``."""
        if not paths:
            return []
        result = await self._pool(location).run(read_command(paths), paths[0])
        return await asyncio.to_thread(read_archive, location, paths, result)

    async def sha256_files(
        self, location: ExecutionLocation, paths: Sequence[str]
    ) -> list[str | ConnectorError]:
        """One ``sha256sum`` on the host for all of ``paths``: only the digests cross the
        network (the files are read back here where the host has no ``sha256sum``)."""
        pool = self._pool(location)
        if not paths or not (await pool.tools()).sha256sum:
            return await super().sha256_files(location, paths)
        result = await pool.run("xargs -0 sha256sum -z --", paths[0], path_list(paths))
        return hashed_files(location, paths, result)

    async def read_file(self, location: ExecutionLocation, path: str) -> bytes:
        [content] = await self.read_files(location, [path])
        if isinstance(content, ConnectorError):
            raise content
        return content

    # -- directories, links, metadata -------------------------------------------------------

    async def mkdir(self, location: ExecutionLocation, path: str) -> None:
        await self.make_directories(location, [path])

    async def make_directories(self, location: ExecutionLocation, paths: Sequence[str]) -> None:
        """One ``mkdir -p`` for all of ``paths`` (the list goes on standard input)."""
        if paths:
            try:
                await self._pool(location).check(
                    "xargs -0 mkdir -p --", paths[0], path_list(paths), "mkdir"
                )
            finally:
                self._metadata.changed(location, paths)

    async def remove(self, location: ExecutionLocation, path: str) -> None:
        try:
            await self._pool(location).check(f"rm -rf -- {q(path)}", path, what="rm")
        finally:
            self._metadata.changed_tree(location)

    async def symlink(self, location: ExecutionLocation, target: str, path: str) -> None:
        await self.make_symlinks(location, [LinkItem(target, path)])

    async def make_symlinks(self, location: ExecutionLocation, items: Sequence[LinkItem]) -> None:
        """Each link made under a temporary name, given its time (``touch -h``), and renamed
        over ``path``: atomic."""
        commands = []
        for item in items:
            temporary = temporary_name(item.path)
            timed = ""
            if item.mtime_ns is not None:
                timed = f"touch -h -d @{decimal_seconds(item.mtime_ns)} -- {q(temporary)} && "
            commands.append(
                f"ln -s -- {q(item.target)} {q(temporary)} && {timed}mv -fT -- {q(temporary)} "
                f"{q(item.path)}"
            )
        if commands:
            try:
                await self._pool(location).check(" && ".join(commands), items[0].path, what="ln")
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
        await self.apply_metadata(location, [MetadataItem(path, mode, mtime_ns)])

    async def apply_metadata(
        self, location: ExecutionLocation, items: Sequence[MetadataItem]
    ) -> None:
        """One ``tar x`` for directories (see :func:`.pack_directories`), else one script
        of ``touch`` and ``chmod`` for all of ``items``."""
        wanted = [
            (i.path, i.mode, i.mtime_ns) for i in items if (i.mode, i.mtime_ns) != (None, None)
        ]
        if wanted:
            pool = self._pool(location)
            try:
                if not await self._unpack_directories(pool, wanted):
                    script = metadata_script(wanted).encode("utf-8", "surrogateescape")
                    await pool.check("sh -s", wanted[0][0], script)
            finally:
                self._metadata.changed(location, [item.path for item in items])

    async def _unpack_directories(
        self, pool: NodePool, items: Sequence[tuple[str, int | None, int | None]]
    ) -> bool:
        """Give directories their metadata by unpacking them; False when some item is not
        an existing directory, before anything changed."""
        packed = await asyncio.to_thread(pack_directories, items)
        if packed is None:
            return False
        for script, archive in packed:
            result = await pool.run(script, items[0][0], archive)
            if result.status == EXIT_NOT_DIRECTORIES:
                return False
            if result.status != 0:
                raise command_error(result, pool.location, items[0][0], "tar")
        return True

    async def rename(self, location: ExecutionLocation, src: str, dst: str) -> None:
        try:
            await self._pool(location).check(f"mv -T -- {q(src)} {q(dst)}", src, what="mv")
        finally:
            self._metadata.changed_tree(location)

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
        [error] = await self.copy_files(location, [item])
        if error is not None:
            raise error

    async def copy_files(
        self, location: ExecutionLocation, items: Sequence[CopyItem]
    ) -> list[ConnectorError | None]:
        """``cp`` on the host for each file, in one script; the output says which failed."""
        lines = []
        for number, item in enumerate(items):
            written = temporary_name(item.dst) if item.atomic else item.dst
            steps = [
                f"[ -f {q(item.src)} ] || exit {EXIT_NOT_FOUND}",
                f"cp --reflink=auto -- {q(item.src)} {q(written)}",
            ]
            if item.size is not None:
                steps.append(
                    f'[ "$(stat -c %s -- {q(written)})" = {item.size} ] || exit {EXIT_MISMATCH}'
                )
            steps.extend(metadata_commands(written, item.mode, item.mtime_ns))
            if item.atomic:
                steps.append(f"mv -fT -- {q(written)} {q(item.dst)}")
            body = " && ".join(steps)
            lines.append(
                f"err=$( ( {body} ) 2>&1 >/dev/null ) || {{ s=$?; rm -f -- {q(written)}; "
                f'printf "%s %s %s\\n" {number} $s "$(printf %s "$err" | tr "\\n" " ")"; }}'
            )
        if not lines:
            return []
        try:
            output = await self._pool(location).check("\n".join(lines), items[0].src)
        finally:
            self._metadata.changed(location, [item.dst for item in items])
        return _copy_results(location, items, output.decode(errors="replace"))

    async def close(self) -> None:
        pools, self._pools = list(self._pools.values()), {}
        async with asyncio.TaskGroup() as group:
            for pool in pools:
                group.create_task(pool.close())


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
