"""CRC32C helpers: the standard check value, S3's encoding, combining pieces, and the
start-up table agreeing with the ``crc32c`` package."""

from __future__ import annotations

import subprocess
import sys

from hypothesis import given
from hypothesis import strategies as st

from streamflow_data import Digest, checksum
from streamflow_data.checksum import crc32c, crc32c_base64, crc32c_combine, crc32c_of_pieces


def test_standard_check_value_and_s3_encoding() -> None:
    assert crc32c(b"123456789") == 0xE3069283
    assert crc32c_base64(0xE3069283) == "4waSgw=="
    assert crc32c(b"6789", crc32c(b"12345")) == 0xE3069283
    assert Digest.of(b"123456789") == Digest(9, 0xE3069283)
    assert str(Digest(9, 0xE3069283)) == "9 bytes, crc32c 4waSgw=="


@given(st.binary(max_size=3000), st.binary(max_size=3000), st.binary(max_size=100))
def test_combining_pieces_equals_the_checksum_of_the_whole(
    first: bytes, second: bytes, third: bytes
) -> None:
    combined = crc32c_combine(crc32c(first), crc32c(second), len(second))
    combined = crc32c_combine(combined, crc32c(third), len(third))
    assert combined == crc32c(first + second + third)


@given(st.binary(max_size=3000), st.lists(st.integers(min_value=1, max_value=500), max_size=8))
def test_pieces_that_cover_bytes_once_give_their_checksum(data: bytes, cuts: list[int]) -> None:
    ends = sorted({min(cut, len(data)) for cut in cuts} | {len(data)})
    starts = [0, *ends[:-1]]
    spans = zip(starts, ends, strict=True)
    pieces = {start: (end - start, crc32c(data[start:end])) for start, end in spans}
    assert crc32c_of_pieces(dict(reversed(pieces.items())), len(data)) == crc32c(data)


def test_pieces_with_a_gap_an_overlap_or_a_short_end_give_nothing() -> None:
    data = bytes(range(100))

    def piece(start: int, end: int) -> tuple[int, int]:
        return end - start, crc32c(data[start:end])

    assert crc32c_of_pieces({0: piece(0, 40), 50: piece(50, 100)}, 100) is None
    assert crc32c_of_pieces({0: piece(0, 60), 50: piece(50, 100)}, 100) is None
    assert crc32c_of_pieces({0: piece(0, 40), 40: piece(40, 90)}, 100) is None
    assert crc32c_of_pieces({10: piece(10, 100)}, 100) is None
    assert crc32c_of_pieces({}, 0) == crc32c(b"")


@given(st.binary(max_size=5000), st.integers(min_value=0, max_value=0xFFFFFFFF))
def test_the_start_up_table_agrees_with_the_crc32c_package(data: bytes, value: int) -> None:
    import crc32c as package

    assert checksum._table_crc32c(data, value) == package.crc32c(data, value)
    assert checksum._table_crc32c(memoryview(data), value) == package.crc32c(data, value)


def test_the_package_takes_over_past_the_table_budget() -> None:
    """A fresh process checksums its first bytes by table, then loads the package."""
    script = (
        "import sys\n"
        "from streamflow_data.checksum import TABLE_BUDGET, crc32c\n"
        "small = crc32c(b'123456789')\n"
        "loaded_early = 'crc32c' in sys.modules\n"
        "large = crc32c(bytes(TABLE_BUDGET))\n"
        "print(small, loaded_early, 'crc32c' in sys.modules, large)\n"
    )
    found = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert found.returncode == 0, found.stderr
    small, loaded_early, loaded_late, large = found.stdout.split()
    assert (int(small), loaded_early, loaded_late) == (0xE3069283, "False", "True")
    assert int(large) == checksum._table_crc32c(bytes(checksum.TABLE_BUDGET), 0)
