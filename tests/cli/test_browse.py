"""``ls``, ``cat`` and ``deployments``, as a user runs them."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from streamflow_data.cli.main import command_parsers
from tests.cli.console import SCRIPT, run


def _tree(root: Path) -> None:
    (root / "sub").mkdir(parents=True)
    (root / "a.txt").write_text("alpha")
    (root / "sub" / "b.bin").write_bytes(bytes(range(256)) * 1000)
    os.symlink("a.txt", root / "link")
    os.utime(root / "a.txt", ns=(1_600_000_000 * 10**9, 1_600_000_000 * 10**9))


def test_ls_lists_a_level_or_the_tree_with_kinds_sizes_and_times(tmp_path: Path) -> None:
    _tree(tmp_path / "t")
    level = json.loads(run("ls", "--json", str(tmp_path / "t")).stdout)
    assert level["location"] == "local/localhost"
    entries = {e["name"]: e for e in level["entries"]}
    assert sorted(entries) == ["a.txt", "link", "sub"]
    assert (entries["a.txt"]["kind"], entries["a.txt"]["size"]) == ("file", 5)
    assert entries["a.txt"]["mtime"] == "2020-09-13T12:26:40Z"
    assert (entries["link"]["kind"], entries["link"]["target"]) == ("link", "a.txt")
    assert entries["sub"]["kind"] == "dir"
    tree = json.loads(run("ls", "--json", "-R", str(tmp_path / "t")).stdout)
    assert [e["name"] for e in tree["entries"]] == ["a.txt", "link", "sub", "sub/b.bin"]
    text = run("ls", str(tmp_path / "t")).stdout.splitlines()
    assert text[0].split() == ["KIND", "MODE", "SIZE", "MODIFIED", "NAME"]
    assert text[2].split()[-3:] == ["link", "->", "a.txt"]
    missing = run("ls", str(tmp_path / "nothing"))
    assert missing.returncode == 1 and "no such file or directory" in missing.stderr


def test_cat_writes_the_bytes_and_refuses_a_directory(tmp_path: Path) -> None:
    _tree(tmp_path / "t")
    assert SCRIPT is not None
    shown = subprocess.run(
        [SCRIPT, "cat", str(tmp_path / "t" / "sub" / "b.bin")], capture_output=True, check=False
    )
    assert shown.returncode == 0 and shown.stdout == bytes(range(256)) * 1000
    refused = run("cat", str(tmp_path / "t"))
    assert refused.returncode == 2 and "is a directory: list it with ls" in refused.stderr


def test_deployments_lists_each_with_its_type_and_location_names(tmp_path: Path) -> None:
    (tmp_path / "streamflow-data.toml").write_text(
        '[deployments.hpc]\ntype = "ssh"\nnodes = ["login1", "login2:2200"]\nusername = "a"\n'
    )
    listed = json.loads(run("deployments", "--json", cwd=tmp_path).stdout)
    assert listed == [
        {"name": "hpc", "type": "ssh", "locations": ["login1", "login2_2200"]},
        {"name": "local", "type": "local", "locations": ["localhost"]},
    ]


def test_every_command_argument_and_option_has_help_text() -> None:
    main, commands = command_parsers()
    for name, parser in {"streamflow-data": main, **commands}.items():
        for action in parser._actions:  # argparse offers no public list of them
            assert action.help, f"{name}: {action.option_strings or action.dest} has no help"
