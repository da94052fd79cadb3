"""Options of an ``s3`` deployment, validated by pydantic."""

from __future__ import annotations

from typing import Literal

import pydantic

__all__ = ["S3Options"]

MiB = 1024 * 1024


class S3Options(pydantic.BaseModel):
    """Options of an ``s3`` deployment (a table of the configuration file).

    Credentials are taken, in order, from ``access_key_id`` and ``secret_access_key``, the
    named ``profile``, or botocore's usual chain (environment variables, shared files,
    instance roles).
    """

    model_config = pydantic.ConfigDict(extra="forbid", frozen=True)

    buckets: list[str] = pydantic.Field(min_length=1)
    """The buckets served, each a location named after it."""
    endpoint_url: str | None = None
    """The S3 endpoint (``http://127.0.0.1:9000``); AWS's regional endpoint when unset."""
    region: str = "us-east-1"
    access_key_id: str | None = None
    secret_access_key: pydantic.SecretStr | None = None
    session_token: pydantic.SecretStr | None = None
    profile: str | None = None
    """A profile of the shared AWS configuration files."""
    addressing_style: Literal["auto", "path", "virtual"] = "auto"
    part_size: int = pydantic.Field(default=8 * MiB, ge=5 * MiB, le=5 * 1024 * MiB)
    """Bytes per part of a multipart upload; files up to this size take one PUT."""
    max_concurrency: int = pydantic.Field(default=10, ge=1, le=256)
    """Requests in flight at once per bucket (parts, small objects, ranged reads)."""
    content_md5: bool = False
    """Also send each request's MD5 and compare the ETag answered with it: for servers
    that ignore ``x-amz-checksum-crc32c`` (S3 itself checks it), at an MD5 per byte."""
    retries: int = pydantic.Field(default=3, ge=0, le=20)
    """Further attempts of a failed request (botocore's standard retry mode)."""
    connect_timeout: float = pydantic.Field(default=10.0, gt=0)
    read_timeout: float = pydantic.Field(default=60.0, gt=0)
    metadata_ttl: float = pydantic.Field(default=2.0, ge=0)
    """Seconds ``stat`` and ``walk`` answers are kept; the connector forgets them itself
    when it changes a key."""

    @pydantic.model_validator(mode="after")
    def _credentials_in_pairs(self) -> S3Options:
        if (self.access_key_id is None) != (self.secret_access_key is None):
            raise ValueError("access_key_id and secret_access_key go together")
        return self
