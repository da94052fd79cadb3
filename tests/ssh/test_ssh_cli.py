"""The command line against real sshd hosts, configured by a TOML file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli.console import run
from tests.helpers import make_tree, snapshot
from tests.ssh.sshd import SSHServer, login_user


@pytest.fixture
def config(tmp_path: Path, ssh_servers: list[SSHServer]) -> Path:
    """A configuration with one deployment of both hosts, and a private state directory."""
    base = ssh_servers[0].directory.parent
    nodes = ", ".join(
        f'{{ hostname = "127.0.0.1", port = {server.port}, name = "{server.name}" }}'
        for server in ssh_servers
    )
    path = tmp_path / "streamflow-data.toml"
    path.write_text(
        f"""
[catalog]
path = "catalog.sqlite"

[deployments.hpc]
type = "ssh"
nodes = [{nodes}]
username = "${{SFD_TEST_USER}}"
client_keys = ["{base / "client_key"}"]
known_hosts = "{base / "known_hosts"}"
"""
    )
    return path


def test_cp_to_two_hosts_and_back_through_the_command_line(
    tmp_path: Path, config: Path, remote_dir: Path
) -> None:
    make_tree(tmp_path / "src")
    (tmp_path / "blob").write_bytes(b"blob" * 100_000)
    env = {"SFD_TEST_USER": login_user(), "XDG_STATE_HOME": str(tmp_path / "state")}
    # The test hosts share one file system: a file at one path on both is written twice.
    blob = f"{remote_dir}/blob"
    both = run(
        "cp", "--json", "blob", f"hpc/host-a:{blob}", f"hpc/host-b:{blob}",
        cwd=tmp_path, env=env,
    )  # fmt: skip
    assert both.returncode == 0, both.stderr
    summary = json.loads(both.stdout)
    assert [d["status"] for d in summary["destinations"]] == ["copied", "copied"]
    # One transfer for the two hosts: the source was read once.
    assert len({d["transfer"] for d in summary["destinations"]}) == 1
    located = json.loads(run("locate", "--json", blob, cwd=tmp_path, env=env).stdout)
    # The copies are replicas of the local file: each is known with the others.
    assert sorted((r["location"], r["path"]) for r in located["replicas"]) == [
        ("hpc/host-a", blob),
        ("hpc/host-b", blob),
        ("local/localhost", str(tmp_path / "blob")),
    ]

    remote = f"{remote_dir}/tree"
    up = run("cp", "src", f"hpc/host-a:{remote}", cwd=tmp_path, env=env)
    assert up.returncode == 0, up.stderr
    down = run("cp", f"hpc/host-b:{remote}", "back", cwd=tmp_path, env=env)
    assert down.returncode == 0, down.stderr
    assert snapshot(tmp_path / "back") == snapshot(tmp_path / "src")
    stats = json.loads(run("stats", "--json", cwd=tmp_path, env=env).stdout)
    assert stats["locations"]["hpc/host-a"]["bytes_written"] > 0
    assert stats["locations"]["hpc/host-b"]["bytes_read"] > 0


def test_a_host_without_a_location_name_and_a_dead_host(
    tmp_path: Path, config: Path, remote_dir: Path
) -> None:
    (tmp_path / "f").write_text("f")
    env = {"SFD_TEST_USER": login_user(), "XDG_STATE_HOME": str(tmp_path / "state")}
    ambiguous = run("cp", "f", f"hpc:{remote_dir}/f", cwd=tmp_path, env=env)
    assert ambiguous.returncode == 2 and "host-a, host-b" in ambiguous.stderr
    config.write_text(
        config.read_text().replace("[deployments.hpc]", "[deployments.dead]\n"
        'type = "ssh"\nnodes = ["127.0.0.1:9"]\nretries = 0\ncheck_host_keys = false\n'
        "\n[deployments.hpc]")
    )  # fmt: skip
    dead = run(
        "cp", "f", f"dead:{remote_dir}/f", f"hpc/host-a:{remote_dir}/f", cwd=tmp_path, env=env
    )
    assert dead.returncode == 3, dead.stderr  # one destination failed, the other did not
    assert "127.0.0.1" in dead.stderr
    assert (remote_dir / "f").read_text() == "f"


def test_a_destination_the_user_cannot_write_is_reported_once(tmp_path: Path, config: Path) -> None:
    (tmp_path / "src" / "a" / "b").mkdir(parents=True)
    (tmp_path / "src" / "a" / "b" / "f").write_text("f")
    env = {"SFD_TEST_USER": login_user(), "XDG_STATE_HOME": str(tmp_path / "state")}
    denied = run("cp", "--no-progress", "src", "hpc/host-a:/usr/sfd-denied", cwd=tmp_path, env=env)
    assert denied.returncode == 1
    [line] = denied.stderr.splitlines()
    assert "permission denied" in line and line.count("Permission denied") == 1, line


def test_a_node_off_port_22_is_named_so_that_its_name_can_be_pasted_back(
    tmp_path: Path, ssh_servers: list[SSHServer], remote_dir: Path
) -> None:
    base = ssh_servers[0].directory.parent
    port = ssh_servers[0].port
    (tmp_path / "streamflow-data.toml").write_text(
        f"""
[deployments.hpc]
type = "ssh"
nodes = ["127.0.0.1:{port}", "127.0.0.1:{ssh_servers[1].port}"]
username = "{login_user()}"
client_keys = ["{base / "client_key"}"]
known_hosts = "{base / "known_hosts"}"
"""
    )
    (tmp_path / "f").write_text("f")
    env = {"XDG_STATE_HOME": str(tmp_path / "state")}
    name = f"127.0.0.1_{port}"
    copied = run("cp", "--no-progress", "f", f"hpc/{name}:{remote_dir}/f", cwd=tmp_path, env=env)
    assert copied.returncode == 0, copied.stderr
    located = json.loads(run("locate", "--json", f"{remote_dir}/f", cwd=tmp_path, env=env).stdout)
    [replica] = [r for r in located["replicas"] if r["location"] != "local/localhost"]
    assert replica["location"] == f"hpc/{name}"
    # What locate printed is what cp takes.
    back = run("cp", f"{replica['location']}:{replica['path']}", "back", cwd=tmp_path, env=env)
    assert back.returncode == 0, back.stderr
    assert (tmp_path / "back").read_text() == "f"


def test_ls_and_cat_on_a_host(tmp_path: Path, config: Path, remote_dir: Path) -> None:
    env = {"SFD_TEST_USER": login_user(), "XDG_STATE_HOME": str(tmp_path / "state")}
    (remote_dir / "sub").mkdir()
    (remote_dir / "sub" / "f.txt").write_text("on the host")
    where = f"hpc/host-a:{remote_dir}"
    listed = json.loads(run("ls", "--json", "-R", where, cwd=tmp_path, env=env).stdout)
    assert listed["location"] == "hpc/host-a"
    assert [(e["name"], e["kind"]) for e in listed["entries"]] == [
        ("sub", "dir"),
        ("sub/f.txt", "file"),
    ]
    shown = run("cat", f"{where}/sub/f.txt", cwd=tmp_path, env=env)
    assert shown.returncode == 0 and shown.stdout == "on the host"
    deployments = json.loads(run("deployments", "--json", cwd=tmp_path, env=env).stdout)
    assert {"name": "hpc", "type": "ssh", "locations": ["host-a", "host-b"]} in deployments
