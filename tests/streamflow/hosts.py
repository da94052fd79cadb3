"""StreamFlow ``ssh`` deployments of the test servers (for the tests, the CWL suite and the
benchmark alike)."""

from __future__ import annotations

from tests.ssh.sshd import SSHServer, login_user


def ssh_config(*servers: SSHServer, **extra: object) -> dict[str, object]:
    """The ``config`` of a StreamFlow ``ssh`` deployment whose nodes are ``servers``, with
    the session's client key (beside the servers' directories), host keys unchecked."""
    return {
        "nodes": [f"127.0.0.1:{server.port}" for server in servers],
        "username": login_user(),
        "sshKey": str(servers[0].directory.parent / "client_key"),
        "checkHostKey": False,
        **extra,
    }
