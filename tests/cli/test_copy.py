"""``streamflow-data cp``: outputs, exit statuses, progress, JSON, dry runs."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from tests.cli.console import SCRIPT, run, run_on_terminal


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
    result = run("cp", "src", "one", "existing/", cwd=tmp_path)
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
    header, line = status.stdout.splitlines()
    assert header.split()[:3] == ["ID", "STATE", "FILES"]
    assert line.split()[:3] == ["1", "done", "3"]
    assert (
        f"local/localhost:{tmp_path / 'src'} -> local/localhost:{tmp_path / 'dst' / 'src'}" in line
    )
    dump = run("dump-state", "1", "-o", str(tmp_path / "state.csv"))
    assert dump.returncode == 0, dump.stderr
    lines = (tmp_path / "state.csv").read_text().splitlines()
    assert lines[0] == "relpath,destination,state,size,bytes_written,partial_file"
    target = f"local/localhost:{tmp_path / 'dst' / 'src'}"
    assert sorted(lines[1:]) == [f"{n},{target},valid,100,100," for n in "abc"]
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


def _tree(root: Path, files: int = 3, size: int = 1000) -> Path:
    root.mkdir()
    for index in range(files):
        (root / f"f{index}").write_bytes(bytes([index % 256]) * size)
    return root


def test_json_summary_then_nothing_to_do(tmp_path: Path) -> None:
    _tree(tmp_path / "src")
    first = run("cp", "--json", "src", "a/", "b/", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    summary = json.loads(first.stdout)
    assert [d["destination"] for d in summary["destinations"]] == ["a/", "b/"]
    assert {d["status"] for d in summary["destinations"]} == {"copied"}
    assert all(d["files"] == 3 and d["bytes_moved"] == 3000 for d in summary["destinations"])
    # a/src and b/src: two paths, one transfer, the source read once.
    assert [d["transfer"] for d in summary["destinations"]] == [1, 1]
    # Copied by the file system beside the source (copy_file_range): its size is checked.
    assert {d["verification"] for d in summary["destinations"]} == {"size"}
    again = json.loads(run("cp", "--json", "src", "a/", cwd=tmp_path).stdout)
    [destination] = again["destinations"]
    assert (destination["status"], destination["bytes_moved"]) == ("nothing to do", 0)
    assert destination["verification"] is None  # nothing copied, nothing checked


def test_destinations_sharing_a_path_read_the_source_once(tmp_path: Path) -> None:
    _tree(tmp_path / "src")
    result = run("cp", "--json", "src", "local:" + str(tmp_path / "x"), "x", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    # The same location and path written twice: one destination, copied once.
    assert len(json.loads(result.stdout)["destinations"]) == 1


def test_dry_run_prints_the_plan_and_copies_nothing(tmp_path: Path) -> None:
    _tree(tmp_path / "src", files=4, size=2048)
    (tmp_path / "into").mkdir()
    result = run("cp", "--dry-run", "src", "one", "into/", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "would copy" in result.stdout and "4 file(s), 8.0 KiB" in result.stdout
    assert f"-> local/localhost:{tmp_path / 'into' / 'src'}" in result.stdout
    assert not (tmp_path / "one").exists() and os.listdir(tmp_path / "into") == []
    plan = json.loads(run("cp", "-n", "--json", "src", "one", cwd=tmp_path).stdout)
    assert (plan["dry_run"], plan["files"], plan["bytes"]) == (True, 4, 8192)
    assert plan["destinations"][0]["skip_files"] == 0


def test_dry_run_says_what_the_journal_would_skip(tmp_path: Path) -> None:
    _tree(tmp_path / "src", files=4, size=2048)
    assert run("cp", "--no-progress", "src", "one", cwd=tmp_path).returncode == 0
    (tmp_path / "src" / "f0").write_bytes(b"changed since")  # a newer source: copied again
    plan = json.loads(run("cp", "-n", "--json", "src", "one", "two", cwd=tmp_path).stdout)
    skips = [(d["skip_files"], d["skip_bytes"]) for d in plan["destinations"]]
    assert skips == [(3, 3 * 2048), (0, 0)]
    text = run("cp", "-n", "src", "one", cwd=tmp_path).stdout
    assert "would skip 3 file(s), 6.0 KiB, already copied" in text
    assert not (tmp_path / "two").exists()
    assert len(json.loads(run("status", "--json").stdout)) == 1  # dry runs journal nothing
    assert run("cp", "--no-progress", "src", "one", cwd=tmp_path).returncode == 0
    again = run("cp", "-n", "src", "one", cwd=tmp_path).stdout
    assert "nothing to do, every file already copied and unchanged" in again


def test_some_destinations_failing_is_a_partial_failure(tmp_path: Path) -> None:
    _tree(tmp_path / "src")
    (tmp_path / "plain-file").write_text("not a directory")
    result = run("cp", "src", "good", "plain-file/below/dst", cwd=tmp_path)
    assert result.returncode == 3, result.stderr
    assert sorted(os.listdir(tmp_path / "good")) == ["f0", "f1", "f2"]
    assert "plain-file/below/dst" in result.stderr
    every = run("cp", "src", "plain-file/below/dst", cwd=tmp_path)
    assert every.returncode == 1


def test_unknown_deployment_and_location_are_usage_errors(tmp_path: Path) -> None:
    (tmp_path / "a").write_text("a")
    unknown = run("cp", str(tmp_path / "a"), "hpc:/tmp/x")
    assert unknown.returncode == 2 and "hpc" in unknown.stderr
    location = run("cp", str(tmp_path / "a"), "local/elsewhere:/tmp/x")
    assert location.returncode == 2 and "elsewhere" in location.stderr
    relative = run("cp", str(tmp_path / "a"), "local:relative/path")
    assert relative.returncode == 2 and "must be absolute" in relative.stderr


def test_progress_lines_when_not_a_terminal(tmp_path: Path) -> None:
    _tree(tmp_path / "src")
    result = run("cp", "src", "dst", cwd=tmp_path)
    assert result.returncode == 0
    lines = result.stderr.splitlines()
    assert lines[0].startswith(f"local/localhost:{tmp_path}/dst") and "0/3 files" in lines[0]
    assert "100%" in lines[-1] and "3/3 files" in lines[-1] and lines[-1].endswith("done")
    assert "\x1b[" not in result.stderr
    quiet = run("cp", "--no-progress", "src", "other", cwd=tmp_path)
    assert quiet.returncode == 0 and quiet.stderr == ""


def test_progress_bar_on_a_terminal(tmp_path: Path) -> None:
    _tree(tmp_path / "src", files=5, size=100_000)
    status, shown = run_on_terminal("cp", "src", "dst", cwd=tmp_path)
    assert status == 0, shown
    assert "\x1b[2K" in shown  # lines redrawn in place
    assert "[########################] 100%" in shown and "5/5 files" in shown
    assert "copied" in shown
    status, shown = run_on_terminal("cp", "--no-progress", "src", "again", cwd=tmp_path)
    assert status == 0 and "\x1b[2K" not in shown and "copied" in shown


def test_verbose_json_logs(tmp_path: Path) -> None:
    (tmp_path / "a").write_text("a")
    result = run("cp", "-v", "--log-format", "json", "--no-progress", "a", "b", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stderr.splitlines()]
    assert {record["level"] for record in records} == {"info"}
    assert any(record["message"].endswith(": done") for record in records)
    assert all(record["logger"].startswith("streamflow_data") for record in records)


def test_ctrl_c_stops_cleanly_and_the_copy_resumes(tmp_path: Path) -> None:
    source = _tree(tmp_path / "src", files=600, size=200_000)
    assert SCRIPT is not None
    process = subprocess.Popen(
        [SCRIPT, "cp", "src", "dst"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stderr is not None
    first = process.stderr.readline()  # the first progress line: the copy has started
    assert "0/600 files" in first
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    assert "interrupted" in err and "run the same command again" in err
    assert "Traceback" not in err
    assert not (tmp_path / "dst").exists()  # a tree appears whole, or not at all
    again = run("cp", "src", "dst", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    for path in source.iterdir():
        assert (tmp_path / "dst" / path.name).read_bytes() == path.read_bytes()


@pytest.mark.parametrize(
    ("directory", "reason"),
    [("/proc/", "no such file or directory"), ("/sys/kernel/", "permission denied")],
)
def test_a_destination_that_cannot_be_written_is_named(
    tmp_path: Path, directory: str, reason: str
) -> None:
    (tmp_path / "one.txt").write_text("one")
    result = run("cp", "--no-progress", str(tmp_path / "one.txt"), directory)
    assert result.returncode == 1
    failure = result.stderr.splitlines()[-1]
    assert f"{reason}: '{directory}one.txt' on local/localhost" in failure, failure


def test_a_full_destination_disk_is_named(tmp_path: Path) -> None:
    disk = tmp_path / "small-disk"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(disk)], check=True)
    try:
        (tmp_path / "big.bin").write_bytes(os.urandom(200_000))
        result = run("cp", "--no-progress", str(tmp_path / "big.bin"), f"{disk}/")
        assert result.returncode == 1
        failure = result.stderr.splitlines()[-1]
        assert f"no space left: '{disk}/big.bin' on local/localhost" in failure, failure
        assert os.listdir(disk) == []
    finally:
        subprocess.run(["umount", str(disk)], check=True)


def _files_below(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.mark.parametrize(
    ("src", "dst", "lands"),
    [
        ("data/tree", "t2/renamed", "t2/renamed"),  # DST is the copy: created, then merged
        ("data/tree/", "t2/renamed", "t2/renamed"),  # a slash after SRC changes nothing
        ("data/tree", "t2/", "t2/tree"),  # a slash after DST: into it, under SRC's name
        ("data/one.txt", "t2/copy.txt", "t2/copy.txt"),
        ("data/one.txt", "t2/", "t2/one.txt"),
    ],
)
def test_running_a_copy_again_lands_in_the_same_place(
    tmp_path: Path, src: str, dst: str, lands: str
) -> None:
    (tmp_path / "data" / "tree" / "sub").mkdir(parents=True)
    (tmp_path / "data" / "tree" / "sub" / "f").write_text("f")
    (tmp_path / "data" / "one.txt").write_text("one")
    first = run("cp", "--no-progress", src, dst, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    again = run("cp", "--no-progress", src, dst, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "nothing to do" in again.stdout
    source = tmp_path / src.rstrip("/")
    if source.is_dir():
        assert _files_below(tmp_path / lands) == _files_below(source)
    else:
        assert (tmp_path / lands).read_bytes() == source.read_bytes()
    assert sorted(os.listdir(tmp_path / "t2")) == [lands.split("/")[1]]


def test_a_file_onto_a_directory_without_a_slash_is_refused(tmp_path: Path) -> None:
    (tmp_path / "one.txt").write_text("one")
    (tmp_path / "dir").mkdir()
    refused = run("cp", "one.txt", "dir", cwd=tmp_path)
    assert refused.returncode == 2
    assert (
        "dir is a directory: write" in refused.stderr and "dir/ to copy one.txt" in refused.stderr
    )
    assert os.listdir(tmp_path / "dir") == []


def test_copies_are_replicas_of_the_source_unless_independent(tmp_path: Path) -> None:
    (tmp_path / "one.txt").write_text("one")
    assert run("cp", "one.txt", "copy.txt", "dir/", cwd=tmp_path).returncode == 0
    assert not (tmp_path / "copy.txt").is_symlink()  # a real copy, even beside the source
    located = json.loads(run("locate", "--json", str(tmp_path / "one.txt")).stdout)
    assert sorted(r["path"] for r in located["replicas"]) == [
        str(tmp_path / "copy.txt"),
        str(tmp_path / "dir" / "one.txt"),
        str(tmp_path / "one.txt"),
    ]
    assert {r["type"] for r in located["replicas"]} == {"primary"}
    assert run("cp", "--independent", "one.txt", "own.txt", cwd=tmp_path).returncode == 0
    own = json.loads(run("locate", "--json", str(tmp_path / "own.txt")).stdout)
    assert [r["path"] for r in own["replicas"]] == [str(tmp_path / "own.txt")]


def test_paths_inside_a_copied_tree_are_located_in_every_copy(tmp_path: Path) -> None:
    (tmp_path / "tree" / "sub").mkdir(parents=True)
    (tmp_path / "tree" / "sub" / "f1.txt").write_text("one")
    assert run("cp", "tree", "copy", cwd=tmp_path).returncode == 0
    inner = str(tmp_path / "copy" / "sub" / "f1.txt")
    located = json.loads(run("locate", "--json", inner).stdout)
    assert sorted(r["path"] for r in located["replicas"]) == [
        inner,
        str(tmp_path / "tree" / "sub" / "f1.txt"),
    ]
    source = run("source", inner, "--to", "local")
    assert source.returncode == 0, source.stderr
    assert source.stdout.strip().endswith(("/copy/sub/f1.txt", "/tree/sub/f1.txt"))
    # Invalidated in one copy, the inner path is answered by the other only.
    assert run("invalidate", f"local:{tmp_path}/copy/sub").returncode == 0
    located = json.loads(run("locate", "--json", inner).stdout)
    assert [r["path"] for r in located["replicas"]] == [str(tmp_path / "tree" / "sub" / "f1.txt")]
    # A copy of the inner path from there is a replica related to it.
    assert run("cp", f"{tmp_path}/tree/sub/f1.txt", "alone.txt", cwd=tmp_path).returncode == 0
    located = json.loads(run("locate", "--json", str(tmp_path / "alone.txt")).stdout)
    assert sorted(r["path"] for r in located["replicas"]) == [
        str(tmp_path / "alone.txt"),
        str(tmp_path / "tree" / "sub" / "f1.txt"),
    ]


_WITHOUT_PERMISSION_OVERRIDE = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search",
                                "--inh-caps", "-dac_override,-dac_read_search"]  # fmt: skip


@pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("setpriv") is None,
    reason="reads a mode-000 directory as root without the capability that overrides it",
)
def test_an_unreadable_subdirectory_is_named_not_the_tree(tmp_path: Path) -> None:
    (tmp_path / "tree" / "sub").mkdir(parents=True)
    (tmp_path / "tree" / "sub" / "f").write_text("f")
    (tmp_path / "tree" / "sub").chmod(0)
    assert SCRIPT is not None
    result = subprocess.run(
        [*_WITHOUT_PERMISSION_OVERRIDE, SCRIPT, "cp", "--no-progress", "tree", "copy"],
        capture_output=True, text=True, timeout=120, cwd=tmp_path, check=False,
    )  # fmt: skip
    (tmp_path / "tree" / "sub").chmod(0o755)
    assert result.returncode == 1, result.stderr
    assert f"permission denied: '{tmp_path}/tree/sub' on local/localhost" in result.stderr
    assert not (tmp_path / "copy").exists()
