"""The console script, run as a user runs it: in a subprocess."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = shutil.which("streamflow-data", path=os.path.dirname(sys.executable))


@pytest.fixture(autouse=True)
def state_directory(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """Keep the default catalog of every command out of the user's home."""
    state = tmp_path_factory.mktemp("state")
    monkeypatch.setenv("XDG_STATE_HOME", str(state))
    monkeypatch.delenv("STREAMFLOW_DATA_CATALOG", raising=False)
    return state


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    assert SCRIPT is not None, "the console script is not installed"
    return subprocess.run(
        [SCRIPT, *args], capture_output=True, text=True, timeout=60, cwd=cwd, check=False
    )


def test_copies_a_file_and_reports_it(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("hello")
    result = run("cp", str(tmp_path / "a.txt"), str(tmp_path / "b.txt"))
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "b.txt").read_text() == "hello"
    assert f"copied {tmp_path / 'a.txt'} -> {tmp_path / 'b.txt'}: 1 file(s), 5.0 B" in result.stdout


def test_copies_a_tree_to_several_destinations(tmp_path: Path) -> None:
    source = tmp_path / "src"
    (source / "sub").mkdir(parents=True)
    (source / "sub" / "f").write_bytes(b"x" * 2048)
    os.symlink("sub/f", source / "link")
    (tmp_path / "existing").mkdir()
    result = run("cp", "src", "one", "existing", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    for copy in (tmp_path / "one", tmp_path / "existing" / "src"):
        assert (copy / "sub" / "f").read_bytes() == b"x" * 2048
        assert os.readlink(copy / "link") == "sub/f"
    assert result.stdout.count("copied") == 2 and "2.0 KiB" in result.stdout


def test_quiet_prints_nothing(tmp_path: Path) -> None:
    (tmp_path / "a").write_text("a")
    result = run("cp", "-q", str(tmp_path / "a"), str(tmp_path / "b"))
    assert (result.returncode, result.stdout) == (0, "")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["cp", "/definitely/not/here", "/tmp/x"], "does not exist"),
        (["cp", "only-one-argument"], "required: DST"),
        (["frobnicate"], "invalid choice"),
    ],
)
def test_usage_errors_exit_2(args: list[str], message: str) -> None:
    result = run(*args)
    assert result.returncode == 2
    assert message in result.stderr


def test_a_copy_into_itself_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir" / "x").write_text("x")
    result = run("cp", str(tmp_path / "dir"), str(tmp_path / "dir" / "inside"))
    assert result.returncode == 2
    assert "inside" in result.stderr
    assert sorted(os.listdir(tmp_path / "dir")) == ["x"]


def test_a_failed_copy_exits_1_and_leaves_nothing(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("new")
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "keep").write_text("kept")
    result = run("cp", str(tmp_path / "file"), str(tmp_path / "taken") + "/keep/")
    assert result.returncode == 1
    assert "taken/keep/file" in result.stderr
    assert sorted(os.listdir(tmp_path / "taken")) == ["keep"]
    assert (tmp_path / "taken" / "keep").read_text() == "kept"


def test_version() -> None:
    result = run("--version")
    assert result.returncode == 0 and result.stdout.startswith("streamflow-data ")


def test_a_second_copy_says_nothing_to_do_and_the_journal_shows_it(
    tmp_path: Path, state_directory: Path
) -> None:
    (tmp_path / "src").mkdir()
    for name in ["a", "b", "c"]:
        (tmp_path / "src" / name).write_text(name * 100)
    first = run("cp", str(tmp_path / "src"), f"{tmp_path / 'dst'}/")
    assert first.returncode == 0, first.stderr
    assert (state_directory / "streamflow-data" / "catalog.sqlite").exists()
    again = run("cp", str(tmp_path / "src"), f"{tmp_path / 'dst'}/")
    assert again.returncode == 0, again.stderr
    assert "nothing to do, all 3 file(s) already copied and unchanged (transfer 1)" in again.stdout
    status = run("status")
    assert status.returncode == 0, status.stderr
    [line] = status.stdout.splitlines()
    assert line.split()[:3] == ["1", "done", "3"]
    assert (
        f"local/localhost:{tmp_path / 'src'} -> local/localhost:{tmp_path / 'dst' / 'src'}" in line
    )
    dump = run("dump-state", "1", "-o", str(tmp_path / "state.csv"))
    assert dump.returncode == 0, dump.stderr
    lines = (tmp_path / "state.csv").read_text().splitlines()
    assert lines[0] == "relpath,destination,state,size,bytes_written,partial_file"
    assert sorted(lines[1:]) == [f"{n},local/localhost,valid,100,100," for n in "abc"]
    missing = run("dump-state", "7")
    assert missing.returncode == 2 and "no transfer 7" in missing.stderr


def test_an_explicit_catalog_and_a_bad_one(tmp_path: Path) -> None:
    (tmp_path / "a").write_text("a")
    catalog = tmp_path / "my.sqlite"
    result = run("--catalog", str(catalog), "cp", str(tmp_path / "a"), str(tmp_path / "b"))
    assert result.returncode == 0, result.stderr
    assert catalog.exists()
    (tmp_path / "bad.sqlite").write_bytes(b"garbage" * 1000)
    bad = run("--catalog", str(tmp_path / "bad.sqlite"), "status")
    assert bad.returncode == 2
    assert "not a SQLite database, or damaged" in bad.stderr
    assert "Traceback" not in bad.stderr
