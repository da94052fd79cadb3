"""Hosts reached through a shell: a connector written once over any command transport.

A plugin for a new way of reaching POSIX hosts (SSH, a container's ``exec``, a batch
system's job shell) implements :class:`CommandTransport` (run a command; run one as a
:class:`Stream`) and a :class:`ShellConnector` that says which transport serves each
location; ``stat`` and ``walk`` through ``find``, ranged ``dd``, tar batches of small
files, hashing on the host and quoting come with it. A plugin imports these names from
here (docs/connectors.md).
"""

from streamflow_data.shell.commands import Buffer, Completed, in_c_locale, quote, wire
from streamflow_data.shell.connector import HostTools, ShellConnector
from streamflow_data.shell.transport import Closer, CommandTransport, Stream

__all__ = [
    "Buffer",
    "Closer",
    "CommandTransport",
    "Completed",
    "HostTools",
    "ShellConnector",
    "Stream",
    "in_c_locale",
    "quote",
    "wire",
]
