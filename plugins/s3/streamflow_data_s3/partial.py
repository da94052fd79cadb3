"""What an interrupted upload leaves behind so that a later run can continue it.

A writer's resume token is a hidden key beside the object (``.NAME.XXXXXXXXXXXX.sfd-part``,
the name local temporaries get). Once the writer has a multipart upload, an object at that
key, the *marker*, records the upload's id, so that whoever finds it can continue or
abort the upload. It is in one of two states:

- ``live``: a writer is (or was, until it crashed) sending parts. Its parts and buffered
  bytes are unknown, so a resume discards the upload and starts from zero.
- ``suspended``: the writer stopped cleanly (:meth:`Writer.suspend`). Every part it sent
  is acknowledged, and the marker lists them (ETag and CRC32C each) and holds, after the
  header line, the bytes it had not sent yet (less than a part). A resume checks the
  list against the server's ListParts and continues with the next part.

Markers are deleted when the upload completes or is aborted.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

from streamflow_data.sdk import crc32c_combine

__all__ = ["Marker", "parts_crc"]

_VERSION = 1


@dataclass(frozen=True, slots=True)
class Marker:
    """The state of an upload, as its marker object records it."""

    state: str
    """``live`` or ``suspended`` (see the module docstring)."""
    upload_id: str | None
    """None when the writer had not started a multipart upload (it held less than a part)."""
    part_size: int
    parts: tuple[tuple[str, str], ...] = ()
    """ETag and base64 CRC32C of parts 1, 2, ... (suspended markers only)."""
    tail: bytes = b""
    """The bytes after the last part (suspended markers only)."""

    def encode(self) -> bytes:
        header = {
            "version": _VERSION,
            "state": self.state,
            "upload": self.upload_id,
            "part_size": self.part_size,
            "parts": [list(part) for part in self.parts],
        }
        return json.dumps(header, separators=(",", ":")).encode() + b"\n" + self.tail

    @classmethod
    def decode(cls, body: bytes) -> Marker | None:
        """The marker in ``body``; None when it is not one this version wrote."""
        line, newline, tail = body.partition(b"\n")
        try:
            header: Any = json.loads(line)
            if not newline or header["version"] != _VERSION:
                return None
            upload, parts = header["upload"], header["parts"]
            return cls(
                state=str(header["state"]),
                upload_id=None if upload is None else str(upload),
                part_size=int(header["part_size"]),
                parts=tuple((str(etag), str(crc)) for etag, crc in parts),
                tail=tail,
            )
        except (ValueError, KeyError, TypeError):
            return None


def _part_crc(encoded: str) -> int:
    """A part's CRC32C from its base64 form."""
    return int.from_bytes(base64.b64decode(encoded), "big")


def parts_crc(crcs: list[str], part_size: int) -> int:
    """The CRC32C of consecutive full parts, from each part's base64 CRC32C."""
    total = 0
    for encoded in crcs:
        total = crc32c_combine(total, _part_crc(encoded), part_size)
    return total
