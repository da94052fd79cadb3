"""``streamflow-data deliver``: manifests, validation, states, reruns."""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
import os
import zlib
from pathlib import Path

import crc32c

from tests.cli.console import run


def _crc(value: int) -> str:
    return base64.b64encode(value.to_bytes(4, "big")).decode()


def _manifest(source: Path, files: dict[str, bytes], lie_about: str | None = None) -> Path:
    """Write the files and a manifest of them, with one checksum per algorithm in turn;
    the manifest of ``lie_about`` describes other bytes (as if the file were corrupted)."""
    lines = ["path,size,algorithm,checksum"]
    for index, (name, data) in enumerate(files.items()):
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        (source / name).write_bytes(data)
        described = data[:-1] + b"?" if name == lie_about else data
        algorithm = ("crc32", "crc32c", "sha256")[index % 3]
        checksum = {
            "crc32": _crc(zlib.crc32(described)),
            "crc32c": _crc(crc32c.crc32c(described)),
            "sha256": hashlib.sha256(described).hexdigest(),
        }[algorithm]
        lines.append(f"{name},{len(data)},{algorithm},{checksum}")
    manifest = source / "manifest.csv"
    manifest.write_text("\n".join(lines) + "\n")
    return manifest


FILES = {"a.txt": b"alpha" * 100, "sub/b.bin": bytes(range(256)) * 40, "c": b"", "d": b"delta"}


def test_a_good_delivery_then_nothing_to_do(tmp_path: Path, state_directory: Path) -> None:
    (tmp_path / "src").mkdir()
    manifest = _manifest(tmp_path / "src", FILES)
    result = run("deliver", "--manifest", str(manifest), "out", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[:2] == ["STATE  FILES", "valid      4"]
    for name, data in FILES.items():
        assert (tmp_path / "out" / name).read_bytes() == data
    # The states go beside the catalog, in the state directory, and the output says where.
    states = state_directory / "streamflow-data" / "deliveries" / "delivery-1.csv"
    assert f"states written to {states}" in result.stdout
    assert sorted(os.listdir(tmp_path)) == ["out", "src"]
    rows = list(csv.DictReader(io.StringIO(states.read_text())))
    assert [(r["path"], r["state"]) for r in rows] == [(name, "valid") for name in FILES]
    again = run("deliver", "--manifest", str(manifest), "out", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "nothing to do: all 4 file(s) already delivered and valid" in again.stdout


def test_a_corrupted_file_is_invalid_and_removed_and_a_rerun_moves_only_it(
    tmp_path: Path,
) -> None:
    (tmp_path / "src").mkdir()
    manifest = _manifest(tmp_path / "src", FILES, lie_about="sub/b.bin")
    result = run("deliver", "--json", "--manifest", str(manifest), "out", cwd=tmp_path)
    assert result.returncode == 3, result.stderr  # partly valid
    report = json.loads(result.stdout)
    assert report["states"] == {"valid": 3, "invalid": 1}
    [bad] = [f for f in report["files"] if f["state"] == "invalid"]
    assert bad["path"] == "sub/b.bin" and "the manifest says" in bad["message"]
    assert not (tmp_path / "out" / "sub" / "b.bin").exists()  # nobody mistakes it for good
    located = json.loads(run("locate", "--json", str(tmp_path / "out" / "sub" / "b.bin")).stdout)
    assert located["replicas"] == []
    # The source is repaired: the rerun moves that file only.
    (tmp_path / "src" / "sub" / "b.bin").write_bytes(FILES["sub/b.bin"][:-1] + b"?")
    (tmp_path / "out" / "a.txt").write_bytes(b"x" * len(FILES["a.txt"]))  # not re-read
    again = json.loads(
        run("deliver", "--json", "--manifest", str(manifest), "out", cwd=tmp_path).stdout
    )
    assert again["states"] == {"valid": 4} and not again["nothing_to_do"]
    assert (tmp_path / "out" / "a.txt").read_bytes() == b"x" * len(FILES["a.txt"])
    states = Path(again["csv"]).read_text()
    assert states.count(",valid,") == 4


def test_a_missing_source_file_fails_without_retries(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    manifest = _manifest(tmp_path / "src", {"here": b"1", "gone": b"2"})
    (tmp_path / "src" / "gone").unlink()
    result = run("deliver", "--json", "--manifest", str(manifest), "out", cwd=tmp_path)
    assert result.returncode == 3
    report = json.loads(result.stdout)
    assert [(f["path"], f["state"], f["retries"]) for f in report["files"]] == [
        ("here", "valid", 0),
        ("gone", "failed", 0),
    ]


def test_every_file_invalid_exits_1_and_a_bad_manifest_exits_2(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    manifest = _manifest(tmp_path / "src", {"x": b"x"}, lie_about="x")
    assert run("deliver", "--manifest", str(manifest), "out", cwd=tmp_path).returncode == 1
    bad = tmp_path / "bad.csv"
    for text, message in [
        ("path,size\nx,1\n", "missing: algorithm, checksum"),
        ("path,size,algorithm,checksum\n../x,1,crc32,AAAAAA==\n", "line 2: path"),
        ("path,size,algorithm,checksum\nx,-1,crc32,AAAAAA==\n", "line 2: size"),
        ("path,size,algorithm,checksum\nx,1,md5,AAAAAA==\n", "line 2: algorithm"),
        ("path,size,algorithm,checksum\nx,1,sha256,abc\n", "expected 64 hex digits"),
        ("path,size,algorithm,checksum\nx,1,crc32,AAAAAA==\nx,1,crc32,AAAAAA==\n", "twice"),
    ]:
        bad.write_text(text)
        result = run("deliver", "--manifest", str(bad), "out", cwd=tmp_path)
        assert result.returncode == 2 and message in result.stderr, (text, result.stderr)


def test_a_rerun_of_a_large_manifest_lists_the_destination_once(tmp_path: Path) -> None:
    """Past 64 files a rerun checks the earlier-valid ones by one listing; a file gone
    since, or changed in size, is delivered again, the others are not moved."""
    (tmp_path / "src").mkdir()
    files = {f"part-{number:03}": bytes([number]) * (number + 1) for number in range(80)}
    manifest = _manifest(tmp_path / "src", files)
    first = run("deliver", "--manifest", str(manifest), "out", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    (tmp_path / "out" / "part-007").unlink()
    (tmp_path / "out" / "part-042").write_bytes(b"short")
    inodes = {name: (tmp_path / "out" / name).stat().st_ino for name in files if name != "part-007"}
    again = run("deliver", "--manifest", str(manifest), "out", "--json", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["states"] == {"valid": 80}
    # A delivered file is renamed into place: a new inode; one left alone keeps its own.
    kept = {
        name for name, inode in inodes.items() if (tmp_path / "out" / name).stat().st_ino == inode
    }
    assert sorted(set(files) - kept) == ["part-007", "part-042"]
    for name, data in files.items():
        assert (tmp_path / "out" / name).read_bytes() == data
