"""The command line against moto's S3 server, configured by a TOML file."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

from moto.server import ThreadedMotoServer

from tests.cli.console import SCRIPT, run
from tests.helpers import snapshot
from tests.s3.conftest import boto_client, free_port


def _configure(tmp_path: Path, s3_endpoint: str, bucket: str) -> dict[str, str]:
    """A configuration file naming the bucket as deployment ``store``, its secret read from
    the environment; the environment to run the command line with."""
    (tmp_path / "streamflow-data.toml").write_text(
        f"""
[deployments.store]
type = "s3"
buckets = ["{bucket}"]
endpoint_url = "{s3_endpoint}"
access_key_id = "testing"
secret_access_key = "${{SFD_TEST_SECRET}}"
"""
    )
    return {"SFD_TEST_SECRET": "testing", "XDG_STATE_HOME": str(tmp_path / "state")}


def test_cp_up_and_down_and_a_validated_delivery(
    tmp_path: Path, s3_endpoint: str, bucket: str
) -> None:
    env = _configure(tmp_path, s3_endpoint, bucket)
    (tmp_path / "src" / "sub").mkdir(parents=True)
    (tmp_path / "src" / "sub" / "big").write_bytes(bytes(range(256)) * 40_000)
    (tmp_path / "src" / "small").write_bytes(b"small")
    up = run("cp", "--json", "src", "store:/run-1/", cwd=tmp_path, env=env)
    assert up.returncode == 0, up.stderr
    [destination] = json.loads(up.stdout)["destinations"]
    assert destination["status"] == "copied"
    down = run("cp", f"store/{bucket}:/run-1/src", "back", cwd=tmp_path, env=env)
    assert down.returncode == 0, down.stderr
    assert snapshot(tmp_path / "back") == snapshot(tmp_path / "src")  # modes and times too

    (tmp_path / "manifest.csv").write_text(
        "path,size,algorithm,checksum\n"
        f"blob,{len(b'delivered' * 1000)},sha256,"
        "0000000000000000000000000000000000000000000000000000000000000000\n"
    )
    (tmp_path / "blob").write_bytes(b"delivered" * 1000)
    bad = run("deliver", "--json", "--manifest", "manifest.csv", "store:/d", cwd=tmp_path, env=env)
    assert bad.returncode == 1, bad.stderr
    assert json.loads(bad.stdout)["files"][0]["state"] == "invalid"


def test_links_copied_as_files_are_counted_once_and_not_copied_again(
    tmp_path: Path, s3_endpoint: str, bucket: str
) -> None:
    """A bucket keeps no links: a link to a file is planned as that file, so the first
    run, its progress and the rerun agree on the count; a link to a directory is skipped."""
    env = _configure(tmp_path, s3_endpoint, bucket)
    (tmp_path / "src" / "sub").mkdir(parents=True)
    (tmp_path / "src" / "f").write_bytes(b"x" * 100)
    (tmp_path / "src" / "sub" / "g").write_bytes(b"y")
    (tmp_path / "src" / "lnk").symlink_to("f")
    (tmp_path / "src" / "dlnk").symlink_to("sub")
    first = run("cp", "src", "store:/t/", cwd=tmp_path, env=env)
    assert first.returncode == 0, first.stderr
    assert ": 3 file(s), 201.0 B in " in first.stdout
    assert "3/3 files" in first.stderr and "dlnk is a link to a directory" in first.stderr
    rerun = run("cp", "src", "store:/t/", cwd=tmp_path, env=env)
    assert rerun.returncode == 0, rerun.stderr
    assert "nothing to do, all 3 file(s) already copied" in rerun.stdout
    listed = run("ls", "-R", "--json", "store:/t/src", cwd=tmp_path, env=env)
    entries = json.loads(listed.stdout)["entries"]
    kinds = {entry["name"]: (entry["kind"], entry["size"]) for entry in entries}
    assert kinds == {
        "f": ("file", 100),
        "lnk": ("file", 100),
        "sub": ("dir", 0),
        "sub/g": ("file", 1),
    }


def test_an_endpoint_that_dies_mid_copy_is_reported_without_a_traceback(tmp_path: Path) -> None:
    """The copy fails, its clean-up too (the endpoint is gone): one line each, no traceback."""
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        client = boto_client(f"http://127.0.0.1:{port}")
        client.create_bucket(Bucket="dying")
        env = _configure(tmp_path, f"http://127.0.0.1:{port}", "dying")
        (tmp_path / "src").mkdir()
        for number in range(1500):
            (tmp_path / "src" / f"f{number}").write_bytes(os.urandom(20_000))
        copy = subprocess.Popen(
            [SCRIPT or "", "cp", "--no-progress", "src", "store:/x/"],
            cwd=tmp_path, env={**os.environ, **env}, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        for _ in range(600):  # bounded: 60 s
            if client.list_objects_v2(Bucket="dying", Prefix="x/src/f").get("KeyCount"):
                break
            time.sleep(0.1)
    finally:
        server.stop()
    _, stderr = copy.communicate(timeout=120)
    assert copy.returncode == 1, stderr
    assert "Traceback" not in stderr
    assert stderr.strip().splitlines()[-1].startswith("streamflow-data: ")
