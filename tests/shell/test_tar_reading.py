"""Reading what a host's ``tar c`` writes (:func:`tarformat.unpack`), against the tar of
this machine in each of its formats and against Python's :mod:`tarfile`."""

from __future__ import annotations

import io
import os
import subprocess
import tarfile
from pathlib import Path

import pytest

from streamflow_data.shell import tarformat

_FORMATS = ["gnu", "posix", "ustar", "v7"]


def _tree(root: Path) -> list[str]:
    """Files whose names need each header form: short, long (past 100 bytes, and in a
    directory whose own name is long), not UTF-8, empty, a block and one byte more."""
    long_directory = root / ("d" * 120)
    long_directory.mkdir(parents=True)
    (root / "sub").mkdir()
    files = {
        root / "short": os.urandom(100),
        root / ("long-" * 30): os.urandom(513),
        long_directory / "inside": b"",
        root / os.fsdecode(b"caf\xe9-\xff"): os.urandom(4096),
    }
    for path, data in files.items():
        path.write_bytes(data)
    return [str(path.relative_to(root)) for path in files]


def _tar(root: Path, names: list[str], *options: str) -> bytes:
    argv = ["tar", "-c", "-f", "-", "-C", str(root), "--no-recursion", *options, "--", *names]
    return subprocess.run(argv, check=True, capture_output=True).stdout


@pytest.mark.parametrize("form", _FORMATS)
def test_every_member_reads_as_tarfile_reads_it(tmp_path: Path, form: str) -> None:
    names = _tree(tmp_path)
    if form == "ustar":  # long names only where a prefix holds their directories
        names = [n for n in names if len(n.rsplit("/", 1)[-1]) < 100 and n.isascii()]
    elif form == "v7":
        names = [n for n in names if len(n) < 100 and n.isascii()]
    names.append("d" * 120 if form in ("gnu", "posix") else "sub")  # a directory member
    data = _tar(tmp_path, names, f"--format={form}")
    members = list(tarformat.unpack(data))
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        expected = archive.getmembers()
        assert [m.name for m in members] == [m.name for m in expected]
        for member, theirs in zip(members, expected, strict=True):
            if theirs.isdir():
                assert member.kind == b"5"
            else:
                extracted = archive.extractfile(theirs)
                assert extracted is not None
                assert (member.kind, member.data) == (b"0", extracted.read())
    for member in members:
        if member.kind == b"0":
            assert member.data == (tmp_path / member.name).read_bytes()


def test_a_second_name_of_one_file_comes_back_with_the_bytes(tmp_path: Path) -> None:
    """GNU tar writes a hard link member, without data, for the second name."""
    (tmp_path / "a").write_bytes(b"shared bytes")
    os.link(tmp_path / "a", tmp_path / "b")
    data = _tar(tmp_path, ["a", "b"], "-h")
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        assert archive.getmember("b").islnk()
    members = list(tarformat.unpack(data))
    assert [(m.name, m.kind, m.data) for m in members] == [
        ("a", b"0", b"shared bytes"),
        ("b", b"0", b"shared bytes"),
    ]


def test_links_to_what_the_archive_does_not_hold_are_links(tmp_path: Path) -> None:
    (tmp_path / "a").write_bytes(b"x")
    os.link(tmp_path / "a", tmp_path / "b")
    (tmp_path / "c").symlink_to("a")
    data = _tar(tmp_path, ["a", "b", "c"])
    assert [m.kind for m in tarformat.unpack(data)] == [b"0", b"0", b"2"]
    without = data[2 * tarformat.BLOCK :]  # a's header and its one block of data cut off
    members = {m.name: m for m in tarformat.unpack(without)}
    assert (members["b"].kind, members["b"].link) == (b"1", "a")
    assert (members["c"].kind, members["c"].link) == (b"2", "a")


def test_a_damaged_or_cut_archive_is_refused(tmp_path: Path) -> None:
    names = _tree(tmp_path)
    data = _tar(tmp_path, names)
    damaged = bytearray(data)
    damaged[130] ^= 1  # inside the first header's size field
    with pytest.raises(tarformat.ArchiveError, match="checksum"):
        list(tarformat.unpack(bytes(damaged)))
    with pytest.raises(tarformat.ArchiveError, match="ends inside"):
        list(tarformat.unpack(data[: tarformat.BLOCK + 50]))
    with pytest.raises(tarformat.ArchiveError, match="ends inside a header"):
        list(tarformat.unpack(data[: tarformat.BLOCK * 2 + 100]))
    with pytest.raises(tarformat.ArchiveError):
        list(tarformat.unpack(b"Last login: yesterday\n" + data))


def test_a_checksum_summed_with_signed_bytes_is_accepted(tmp_path: Path) -> None:
    """Old tars summed the header's bytes as signed; a name with bytes past 127 tells."""
    name = os.fsdecode(b"caf\xe9")
    (tmp_path / name).write_bytes(b"x")
    header = bytearray(_tar(tmp_path, [name]))
    header[148:156] = b" " * 8
    signed = sum(byte - 256 if byte >= 0x80 else byte for byte in header[: tarformat.BLOCK])
    header[148:156] = b"%06o\0 " % signed
    [member] = tarformat.unpack(bytes(header))
    assert (member.name, member.data) == (name, b"x")
    with tarfile.open(fileobj=io.BytesIO(bytes(header))) as archive:
        assert archive.getnames() == [name]


def test_what_we_write_reads_back() -> None:
    files = [("a/b", 0o640, b"", 1), ("c" * 150, 0o600, os.urandom(700), 2), ("é", 0o644, b"x", 3)]
    data = b"".join(tarformat.archive(tarformat.member(*file) for file in files))
    members = list(tarformat.unpack(data))
    assert [(m.name, m.kind, m.data) for m in members] == [
        (name, b"0", content) for name, _, content, _ in files
    ]
