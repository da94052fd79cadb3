"""Copies within the endpoint of objects too large for one CopyObject (above 5 GiB)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from streamflow_data.sdk import ConnectorError, ExecutionLocation
from streamflow_data_s3.store import S3Store

__all__ = ["copy_in_parts"]


async def copy_in_parts(
    store: S3Store,
    location: ExecutionLocation,
    dst: str,
    source: dict[str, str],
    length: int,
    metadata: dict[str, str],
    part_size: int,
) -> None:
    """Copy ``source`` (``length`` bytes) to ``dst`` with UploadPartCopy, several parts at
    once; the upload is aborted if any part fails."""
    upload_id = await store.start_upload(location, dst, metadata)
    parts: dict[int, dict[str, Any]] = {}

    async def part(number: int, start: int) -> None:
        end = min(start + part_size, length) - 1
        answer = await store.request(
            location,
            dst,
            "upload_part_copy",
            Key=dst.lstrip("/"),
            UploadId=upload_id,
            PartNumber=number,
            CopySource=source,
            CopySourceRange=f"bytes={start}-{end}",
        )
        parts[number] = {"PartNumber": number, "ETag": answer["CopyPartResult"]["ETag"]}

    try:
        async with asyncio.TaskGroup() as group:
            for number, start in enumerate(range(0, length, part_size), start=1):
                group.create_task(part(number, start))
        ordered = [parts[number] for number in sorted(parts)]
        await store.complete_upload(location, dst, upload_id, ordered)
    except BaseException:
        with contextlib.suppress(ConnectorError):
            await store.abort_upload(location, dst, upload_id)
        raise
