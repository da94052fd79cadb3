"""StreamFlow ``ssh`` deployments of the test servers, and ``streamflow.yml`` documents
using them (for the tests, the CWL suite and the benchmark alike)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

from tests.ssh.sshd import SSHServer, login_user


def ssh_config(
    *servers: SSHServer, username: str | None = None, **extra: object
) -> dict[str, object]:
    """The ``config`` of a StreamFlow ``ssh`` deployment whose nodes are ``servers``, with
    the session's client key (beside the servers' directories), host keys unchecked,
    logging in as ``username`` (by default the test user)."""
    return {
        "nodes": [f"127.0.0.1:{server.port}" for server in servers],
        "username": username or login_user(),
        "sshKey": str(servers[0].directory.parent / "client_key"),
        "checkHostKey": False,
        **extra,
    }


def streamflow_file(
    cwl: str,
    bindings: Sequence[Mapping[str, object]],
    servers: Sequence[SSHServer],
    manager: str,
    database: str = ":memory:",
    manager_config: Mapping[str, object] | None = None,
    username: str | None = None,
) -> str:
    """A ``streamflow.yml`` (JSON, which YAML reads) running the workflow ``cwl`` with
    ``settings: job.yml``, the deployments ``ssh-a``, ``ssh-b``, ... of ``servers`` (as
    ``username``), and the data manager ``manager`` (``default``: StreamFlow's own) with
    ``manager_config``."""
    config: dict[str, object] = {
        "version": "v1.0",
        "workflows": {
            "main": {
                "type": "cwl",
                "config": {"file": cwl, "settings": "job.yml"},
                "bindings": list(bindings),
            }
        },
        "deployments": {
            f"ssh-{name}": {"type": "ssh", "config": ssh_config(server, username=username)}
            for name, server in zip("abcdefgh", servers, strict=False)
        },
        "database": {"type": "default", "config": {"connection": database}},
    }
    if manager != "default":
        config["dataManager"] = {"type": manager, "config": dict(manager_config or {})}
    return json.dumps(config)
