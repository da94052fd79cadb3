"""Streaming CRC32 checksums, and combining the checksums of consecutive pieces.

CRC32 (the zlib polynomial, as S3's ``x-amz-checksum-crc32``) is computed by zlib in C and
releases the GIL on large buffers, so a thread computes it while the loop goes on.
:func:`crc32_combine` joins the checksums of consecutive pieces computed independently
(chunks read in parallel) into the checksum of the whole, without reading the data again.
"""

from __future__ import annotations

import base64
import zlib

__all__ = ["crc32", "crc32_base64", "crc32_combine"]

_POLYNOMIAL = 0xEDB88320  # CRC-32 (IEEE 802.3), reflected


def crc32(data: bytes | bytearray | memoryview, value: int = 0) -> int:
    """The CRC32 of ``data``, continuing from ``value`` (the CRC of what came before)."""
    return zlib.crc32(data, value)


def crc32_base64(value: int) -> str:
    """The checksum as S3 writes it: 4 big-endian bytes in base64 (e.g. ``yH2GHg==``)."""
    return base64.b64encode(value.to_bytes(4, "big")).decode("ascii")


def _times(matrix: list[int], vector: int) -> int:
    total = 0
    row = 0
    while vector:
        if vector & 1:
            total ^= matrix[row]
        vector >>= 1
        row += 1
    return total


def _square(matrix: list[int]) -> list[int]:
    return [_times(matrix, column) for column in matrix]


def crc32_combine(first: int, second: int, second_length: int) -> int:
    """The CRC32 of A followed by B, from CRC(A), CRC(B) and the length of B.

    The zlib algorithm: advance CRC(A) over ``second_length`` zero bytes with squared
    operator matrices (O(log length) 32x32 products), then add CRC(B).
    """
    if second_length <= 0:
        return first
    odd = [_POLYNOMIAL] + [1 << bit for bit in range(31)]  # one zero bit
    even = _square(odd)  # two zero bits
    odd = _square(even)  # four zero bits
    while True:
        even = _square(odd)  # apply len's lowest bit: one zero byte's worth, doubling
        if second_length & 1:
            first = _times(even, first)
        second_length >>= 1
        if not second_length:
            break
        odd = _square(even)
        if second_length & 1:
            first = _times(odd, first)
        second_length >>= 1
        if not second_length:
            break
    return first ^ second
