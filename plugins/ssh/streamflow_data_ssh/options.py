"""The SSH connector's configuration: the nodes of a deployment and how to reach them."""

from __future__ import annotations

from typing import Literal

import pydantic

from streamflow_data.sdk import backoff

__all__ = ["DEFAULT_CIPHERS", "NodeOptions", "SSHOptions"]

DEFAULT_CIPHERS = (
    "aes128-gcm@openssh.com",
    "aes256-gcm@openssh.com",
    "chacha20-poly1305@openssh.com",
    "aes128-ctr",
    "aes256-ctr",
)
"""Preferred first to last. AES-GCM first: with AES-NI it moves about twice the bytes per
CPU second of asyncssh's default, chacha20-poly1305."""


class NodeOptions(pydantic.BaseModel):
    """One SSH host of the deployment; it becomes one location."""

    model_config = pydantic.ConfigDict(extra="forbid", frozen=True)

    hostname: str = pydantic.Field(min_length=1)
    port: int = pydantic.Field(22, ge=1, le=65535)
    username: str | None = None
    """Overrides the deployment's ``username`` for this node."""
    name: str | None = None
    """The location name, as written in ``DEPLOYMENT/LOCATION:PATH``: no ``:``, ``/`` or
    blank. Defaults to ``hostname``, or ``hostname_port`` off port 22 (an underscore, which
    no DNS name holds, so it cannot be another host's name)."""

    @pydantic.model_validator(mode="before")
    @classmethod
    def _from_string(cls, value: object) -> object:
        """Accept ``"host"``, ``"host:port"``, and for IPv6 ``"[address]"`` and
        ``"[address]:port"`` (a bare address with colons is a hostname without a port)."""
        if not isinstance(value, str):
            return value
        if value.startswith("[") and "]" in value:
            host, _, rest = value[1:].partition("]")
            port = rest.removeprefix(":")
        elif value.count(":") == 1:
            host, _, port = value.partition(":")
        else:
            host, port = value, ""
        return {"hostname": host, "port": port} if port else {"hostname": host}

    @property
    def location_name(self) -> str:
        """The name of the node's location (see :attr:`name`)."""
        if self.name:
            return self.name
        return self.hostname if self.port == 22 else f"{self.hostname}_{self.port}"

    @pydantic.model_validator(mode="after")
    def _addressable(self) -> NodeOptions:
        """The location name must fit ``DEPLOYMENT/LOCATION:PATH`` (an IPv6 address as the
        hostname needs a ``name``)."""
        name = self.location_name
        if not name or any(c in name for c in ":/") or any(c.isspace() for c in name):
            raise ValueError(
                f"location name {name!r} cannot be written DEPLOYMENT/LOCATION:PATH "
                "(no ':', '/' or blank): give the node a name"
            )
        return self


class SSHOptions(pydantic.BaseModel):
    """Options of an ``ssh`` deployment (a table of the configuration file)."""

    model_config = pydantic.ConfigDict(extra="forbid", frozen=True)

    nodes: list[NodeOptions] = pydantic.Field(min_length=1)
    """The hosts, as tables or ``"host[:port]"`` strings."""
    username: str | None = None
    """The login name; the local user's when unset."""
    client_keys: list[str] | None = None
    """Private key files; asyncssh's defaults (``~/.ssh/id_*``, an agent) when unset."""
    passphrase_file: str | None = None
    """A file holding the passphrase of encrypted ``client_keys`` (its text, stripped of
    surrounding blanks), read when connecting and never logged. ``ssh`` cannot be given
    it, so with ``streams = "auto"`` the byte streams go through asyncssh."""
    known_hosts: str | None = None
    """The known_hosts file to check host keys against; ``~/.ssh/known_hosts`` when unset."""
    check_host_keys: bool = True
    """Host keys are verified unless this is explicitly false (never the default)."""
    connect_timeout: float = pydantic.Field(10.0, gt=0)
    """Seconds to establish a connection, including authentication."""
    ciphers: list[str] = pydantic.Field(default_factory=lambda: list(DEFAULT_CIPHERS), min_length=1)
    """Encryption algorithms in order of preference; the first both sides have is used."""
    compression: bool = False
    """zlib compression: worth it only on slow links with compressible data."""
    max_connections: int = pydantic.Field(2, ge=1, le=64)
    """asyncssh connections per node at most (the OpenSSH master of ``streams`` is one more)."""
    max_sessions: int = pydantic.Field(10, ge=1, le=64)
    """Channels per connection at most: OpenSSH's ``MaxSessions`` default; lower it to a
    server's lower setting. On the master, its own session is one of them, so the
    default leaves room for the engine's eight files at once (with 8, the eighth batch of
    small files went through asyncssh, at 0.2 s of this process's CPU per 1,000 files)."""
    spare_sessions: int = pydantic.Field(8, ge=0, le=63)
    """Sessions the OpenSSH master keeps logged in and waiting for a command, at most (see
    ``streams``): as many as batches of small files are read at once. A batch, or any
    stream of piped bytes, takes one and does not wait for the host's login shell; another
    starts behind it. They give way to streams when the master is full, and to the streams
    of big files on local files. 0: every stream opens its own session."""
    streams: Literal["auto", "openssh", "asyncssh"] = "auto"
    """What carries the byte streams of big files. ``openssh``: the ``ssh`` program, one
    master connection per node with each stream a session on it (a third of asyncssh's
    CPU per byte); ``asyncssh``: the connector's own connections; ``auto``: ``ssh`` when it
    is installed and connects, else asyncssh. Either way a node has at most
    ``max_sessions`` streams on a connection and ``max_connections * max_sessions`` in all."""
    retries: int = pydantic.Field(3, ge=0, le=20)
    """Further attempts after a failed connection or a dropped channel."""
    retry_delay: float = pydantic.Field(0.5, ge=0)
    """Seconds before the first retry; doubled for each further one."""
    verify: Literal["sha256", "none"] = "none"
    """How written bytes are checked on the host. ``none``: the SSH channel's own integrity
    (every packet carries a MAC, AES-GCM's by default), the writer's exit status, and the
    size stored against the size sent. ``sha256`` also hashes the bytes there as they arrive
    (``openssl``, ``sha256sum`` or ``shasum``) and compares with what was sent: it repeats
    what the MAC checks, for about half the throughput on a 2-core host; big downloads to
    a local file then also pass through this process, block by block, each block's CRC32C
    compared with what the file stored (with ``none``, the master writes the file itself).
    To check what was *stored*, use the transfer setting ``checksum = "sha256"``, which
    reads the copies back."""
    metadata_ttl: float = pydantic.Field(2.0, ge=0)
    """Seconds ``stat`` and ``walk`` answers are kept (0: not kept). The connector forgets
    them itself when it changes a path; changes made by others show after this long."""

    def retry_wait(self, attempt: int) -> float:
        """Seconds before retry number ``attempt`` (1, 2, ...): doubling from
        ``retry_delay``, with the package's cap (:func:`streamflow_data.sdk.backoff`)."""
        return backoff(self.retry_delay, attempt)

    @pydantic.model_validator(mode="after")
    def _unique_names(self) -> SSHOptions:
        names = [node.location_name for node in self.nodes]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"two nodes share the location name(s) {', '.join(duplicates)}")
        return self
