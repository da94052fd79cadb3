"""``streamflow-data serve`` in a process of its own, and commands sharing it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

from tests.cli.console import SCRIPT

STREAMFLOW_DATA = [str(SCRIPT)]


def run(*words: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*STREAMFLOW_DATA, *words], capture_output=True, text=True, env=env, timeout=60
    )


def test_commands_share_one_service_which_stops_cleanly_on_sigterm(
    tmp_path: Path, socket_dir: Path
) -> None:
    url = f"unix://{socket_dir}/s.sock"
    env = {**os.environ, "STREAMFLOW_DATA_CATALOG": str(tmp_path / "catalog.sqlite")}
    server = subprocess.Popen(
        [*STREAMFLOW_DATA, "serve", "--listen", f"unix:{socket_dir}/s.sock"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert server.stdout is not None
        assert server.stdout.readline().strip() == f"serving on {url}"
        source = tmp_path / "src"
        source.mkdir()
        (source / "a.txt").write_bytes(b"a" * 1000)
        copied = run("--service", url, "cp", str(source), str(tmp_path / "dst"), env=env)
        assert copied.returncode == 0, copied.stderr
        assert (tmp_path / "dst" / "a.txt").read_bytes() == b"a" * 1000
        located = run(
            "locate", "--json", str(tmp_path / "dst"), env={**env, "STREAMFLOW_DATA_SERVICE": url}
        )
        assert located.returncode == 0, located.stderr
        assert [r["path"] for r in json.loads(located.stdout)["replicas"]] == [
            str(tmp_path / "dst"),
            str(source),
        ]
        status = run("--service", url, "status", "--json", env=env)
        assert [t["state"] for t in json.loads(status.stdout)] == ["done"]
        stats = run("--service", url, "stats", "--json", env=env)
        assert json.loads(stats.stdout)["transfers"]["done"] == 1
    finally:
        server.send_signal(signal.SIGTERM)
        _, errors = server.communicate(timeout=30)
    assert server.returncode == 0, errors
    assert not (socket_dir / "s.sock").exists()
    again = run("locate", str(tmp_path / "dst"), env=env)  # the catalog kept the copy
    assert again.returncode == 0, again.stderr


def test_the_configuration_file_serves_both_sides(tmp_path: Path, socket_dir: Path) -> None:
    (tmp_path / "token").write_text("s3cr3t-token\n")
    config = tmp_path / "streamflow-data.toml"
    config.write_text(
        f'[catalog]\npath = "catalog.sqlite"\n\n[service]\nlisten = "unix:{socket_dir}/s.sock"\n'
        f'url = "unix://{socket_dir}/s.sock"\ntoken_file = "token"\n'
    )
    env = {**os.environ, "STREAMFLOW_DATA_CONFIG": str(config)}
    env.pop("STREAMFLOW_DATA_TOKEN", None)
    env.pop("STREAMFLOW_DATA_SERVICE", None)
    server = subprocess.Popen(
        [*STREAMFLOW_DATA, "serve"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert server.stdout is not None
        assert server.stdout.readline().strip() == f"serving on unix://{socket_dir}/s.sock"
        stats = run("stats", "--json", env=env)  # through the service, with the token
        assert stats.returncode == 0, stats.stderr
        assert "transfers" in json.loads(stats.stdout)
        wrong = run("stats", env={**env, "STREAMFLOW_DATA_TOKEN": "not-it"})
        assert wrong.returncode != 0 and "token" in wrong.stderr
        assert "not-it" not in wrong.stderr and "s3cr3t" not in wrong.stderr
    finally:
        server.send_signal(signal.SIGTERM)
        _, errors = server.communicate(timeout=30)
    assert server.returncode == 0, errors
    assert "s3cr3t" not in errors
