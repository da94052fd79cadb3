"""The pieces of a packed stream, without an SSH server: the tar members we encode, and
their gathered writes into a process's pipe."""

from __future__ import annotations

import asyncio
import io
import os
import random
import subprocess
import tarfile
from pathlib import Path

from streamflow_data_ssh.channels import OpenSSHStream

from streamflow_data.shell import tarformat
from streamflow_data.shell.commands import Buffer, metadata_script
from streamflow_data.shell.packing import EXIT_NOT_DIRECTORIES, pack_directories

_MTIME_NS = 1_700_000_000_123_456_789
_FILES = [
    ("a/b", 0o640, b"", _MTIME_NS),
    ("a/" + "long-name-" * 15, 0o600, os.urandom(511), _MTIME_NS + 1),
    ("a/é-ñ", 0o755, os.urandom(512), -1_500_000_000),  # before 1970: a negative PAX time
    ("z", 0o644, os.urandom(5000), 0),
    ("far", 0o600, b"x", 9_000_000_000_123_456_789),  # past 11 octal digits of seconds
]


def _archive() -> bytes:
    pieces = tarformat.archive(tarformat.member(*file) for file in _FILES)
    return b"".join(pieces)


def test_members_read_back_with_pythons_tarfile() -> None:
    data = _archive()
    assert len(data) % tarformat.RECORD == 0
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        members = archive.getmembers()
        assert [m.name for m in members] == [name for name, *_ in _FILES]
        for member, (_, mode, content, mtime_ns) in zip(members, _FILES, strict=True):
            assert member.isreg() and member.mode == mode and member.size == len(content)
            assert member.pax_headers["mtime"] == _exact(mtime_ns)
            extracted = archive.extractfile(member)
            assert extracted is not None and extracted.read() == content


def _exact(mtime_ns: int) -> str:
    seconds, nanoseconds = divmod(abs(mtime_ns), 1_000_000_000)
    return f"{'-' if mtime_ns < 0 else ''}{seconds}.{nanoseconds:09d}"


def test_gnu_tar_restores_names_modes_and_nanosecond_times(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    subprocess.run(
        ["tar", "-x", "-f", "-", "-p", "--no-same-owner", "-C", str(tmp_path)],
        input=_archive(),
        check=True,
        capture_output=True,
    )
    for name, mode, content, mtime_ns in _FILES:
        stat = (tmp_path / name).stat()
        assert (tmp_path / name).read_bytes() == content
        assert (stat.st_mode & 0o7777, stat.st_mtime_ns) == (mode, mtime_ns)


async def test_pieces_reach_the_process_whole_across_full_pipes_and_many_writes() -> None:
    """More pieces than one gathered write takes and more bytes than the pipe holds: the
    partial writes resume at the right byte."""
    chooser = random.Random(7)
    pieces: list[bytes | memoryview] = []
    for _ in range(3000):
        piece = os.urandom(chooser.choice([0, 1, 511, 512, 4096]))
        pieces.append(memoryview(piece)[1:] if chooser.random() < 0.3 else piece)
    output, into = os.pipe()
    source, input = os.pipe()
    for pipe in (output, input):
        os.set_blocking(pipe, False)
    process = await asyncio.create_subprocess_exec(
        "cat", stdin=source, stdout=into, stderr=subprocess.PIPE
    )
    os.close(into)
    os.close(source)
    stream = OpenSSHStream(process, input, output)
    received = bytearray()

    async def drain() -> None:
        buffer = memoryview(bytearray(1 << 16))
        while count := await stream.receive_into(buffer):
            received.extend(buffer[:count])
            if len(received) == expected:
                return

    expected = sum(len(piece) for piece in pieces)
    async with asyncio.TaskGroup() as group:
        reader = group.create_task(drain())
        await stream.send_pieces(pieces)
        await reader
    result = await stream.finish()
    assert result.status == 0
    assert bytes(received) == b"".join(pieces)


def test_metadata_script_sets_times_first_and_modes_deepest_first_in_runs() -> None:
    items = [("/t/a/b", 0o500, 10), ("/t/a", 0o500, 10), ("/t", 0o700, 20), ("/u", None, 10)]
    lines = metadata_script(items).splitlines()
    assert lines == [
        "set -e",
        'touch -h -d @0.000000010 -- /t/a/b /t/a /u & jobs="$jobs $!"',
        'touch -h -d @0.000000020 -- /t & jobs="$jobs $!"',
        'for job in $jobs; do wait "$job" || failed=1; done; jobs=',
        '[ -z "$failed" ]',
        "chmod 500 -- /t/a/b /t/a",
        "chmod 700 -- /t",
    ]


def test_metadata_script_lines_hold_at_most_256_paths() -> None:
    items = [(f"/d{index}", 0o755, None) for index in range(600)]
    lines = metadata_script(items).splitlines()[1:]
    assert [len(line.split()) - 3 for line in lines] == [256, 256, 88]


def test_metadata_script_fails_after_every_time_is_set_when_one_could_not_be(
    tmp_path: Path,
) -> None:
    """Times are set by several processes at once; one that fails fails the script, and
    the others still ran."""
    paths = [tmp_path / f"d{index}" for index in range(20)]
    for path in paths:
        path.mkdir()
    items = [(str(path), None, (index + 1) * 1_000_000_007) for index, path in enumerate(paths)]
    items.insert(3, (str(tmp_path / "missing" / "x"), None, 5))
    script = metadata_script(items)
    result = subprocess.run(["sh", "-s"], input=script, text=True, capture_output=True)
    assert result.returncode != 0 and "missing" in result.stderr
    wanted = [mtime for path, _, mtime in items if "missing" not in path]
    assert [path.stat().st_mtime_ns for path in paths] == wanted


def _unpack(script: str, archive: list[Buffer]) -> subprocess.CompletedProcess[bytes]:
    data = b"".join(bytes(piece) for piece in archive)
    return subprocess.run(["sh", "-c", script], input=data, capture_output=True)


def test_directories_get_their_modes_and_times_from_one_tar(tmp_path: Path) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "b" / "f").write_bytes(b"kept")
    items = [
        (str(tmp_path / "a" / "b"), 0o500, _MTIME_NS),
        (str(tmp_path / "a"), 0o750, _MTIME_NS + 1),
        (str(tmp_path), 0o700, -1_500_000_000),
    ]
    packed = pack_directories(items)
    assert packed is not None and len(packed) == 1
    result = _unpack(*packed[0])
    assert result.returncode == 0, result.stderr
    for path, mode, mtime_ns in items:
        stat = os.stat(path)
        assert (stat.st_mode & 0o7777, stat.st_mtime_ns) == (mode, mtime_ns)
    assert (tmp_path / "a" / "b" / "f").read_bytes() == b"kept"
    (tmp_path / "a" / "b").chmod(0o700)


def test_a_directory_script_changes_nothing_when_a_path_is_no_directory(tmp_path: Path) -> None:
    """``tar x`` would replace the file and the link by empty directories."""
    (tmp_path / "d").mkdir()
    (tmp_path / "f").write_bytes(b"kept")
    (tmp_path / "link").symlink_to(tmp_path / "d")
    before = os.stat(tmp_path / "d").st_mtime_ns
    for odd in ("f", "link"):
        packed = pack_directories(
            [(str(tmp_path / "d"), 0o700, _MTIME_NS), (str(tmp_path / odd), 0o700, _MTIME_NS)]
        )
        assert packed is not None
        assert _unpack(*packed[0]).returncode == EXIT_NOT_DIRECTORIES
        assert os.stat(tmp_path / "d").st_mtime_ns == before
    assert (tmp_path / "f").read_bytes() == b"kept" and (tmp_path / "link").is_symlink()


def test_directory_scripts_hold_a_command_line_of_names_each(tmp_path: Path) -> None:
    paths = [tmp_path / f"{index:04d}-{'n' * 120}" for index in range(1500)]
    for path in paths:
        path.mkdir()
    items = [(str(path), 0o750, index * 1_000_000_007) for index, path in enumerate(paths)]
    packed = pack_directories(items)
    assert packed is not None and len(packed) > 1
    assert all(len(script) < 100 * 1024 for script, _ in packed)
    for script, archive in packed:
        assert _unpack(script, archive).returncode == 0
    assert [path.stat().st_mtime_ns for path in paths] == [mtime for _, _, mtime in items]


def test_directories_without_a_mode_or_a_time_are_not_packed() -> None:
    assert pack_directories([("/t/a", None, 5), ("/t", 0o700, 5)]) is None
    assert pack_directories([("/t", 0o700, None)]) is None
    assert pack_directories([("/", 0o755, 5)]) is None
