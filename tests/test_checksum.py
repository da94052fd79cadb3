"""CRC32C helpers: the standard check value, S3's encoding, combining pieces."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from streamflow_data import Digest
from streamflow_data.checksum import crc32c, crc32c_base64, crc32c_combine


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
