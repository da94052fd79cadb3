"""Streaming CRC32C checksums, and combining the checksums of consecutive pieces.

CRC32C (Castagnoli; S3's ``x-amz-checksum-crc32c``) is computed by the ``crc32c``
package with the CPU's CRC instructions, several GB/s per core, and releases the GIL, so
a thread computes it while the loop goes on. (zlib's CRC32 measured 1.3 GB/s here against
7.5 GB/s for CRC32C: verification reads every byte of every destination, so this matters.)
:func:`crc32c_combine` joins the checksums of consecutive pieces computed independently
(chunks read in parallel) into the checksum of the whole, without reading them again.
"""

from __future__ import annotations

import base64

import crc32c as _crc32c

__all__ = ["crc32c", "crc32c_base64", "crc32c_combine"]

_POLYNOMIAL = 0x82F63B78  # CRC-32C (Castagnoli), reflected


def crc32c(data: bytes | bytearray | memoryview, value: int = 0) -> int:
    """The CRC32C of ``data``, continuing from ``value`` (the CRC of what came before)."""
    return int(_crc32c.crc32c(data, value))


def crc32c_base64(value: int) -> str:
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


def crc32c_combine(first: int, second: int, second_length: int) -> int:
    """The CRC32C of A followed by B, from CRC(A), CRC(B) and the length of B.

    zlib's method for any reflected CRC-32: advance CRC(A) over ``second_length`` zero
    bytes with squared operator matrices (O(log length) 32x32 products), then add CRC(B).
    """
    if second_length <= 0:
        return first
    odd = [_POLYNOMIAL] + [1 << bit for bit in range(31)]  # the operator for one zero bit
    even = _square(odd)  # two zero bits
    odd = _square(even)  # four zero bits
    while True:
        even = _square(odd)  # one zero byte at the first pass, then doubling
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
