"""Settings of the data manager, validated by pydantic."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

import pydantic

from streamflow_data.errors import ConfigurationError

__all__ = ["TransferSettings", "parse_options"]

_Model = TypeVar("_Model", bound=pydantic.BaseModel)

MiB = 1024 * 1024


class TransferSettings(pydantic.BaseModel):
    """How transfers move bytes.

    Memory used by file data in flight is bounded by
    ``max_concurrent_files * block_size``: each file in flight holds one block at a time,
    whatever the file's size and the number of destinations.
    """

    model_config = pydantic.ConfigDict(extra="forbid", frozen=True)

    block_size: int = pydantic.Field(default=4 * MiB, ge=4096, le=1024 * MiB)
    """Bytes read from the source at a time, then written to every destination."""
    max_concurrent_files: int = pydantic.Field(default=8, ge=1, le=1024)
    """Files of one transfer in flight at once."""


def parse_options(model: type[_Model], options: Mapping[str, object], what: str) -> _Model:
    """Validate ``options`` into ``model``, reporting every mistake by key.

    Raises :class:`~streamflow_data.errors.ConfigurationError` naming ``what`` was being
    configured, each wrong key, and what was expected there.
    """
    try:
        return model.model_validate(dict(options))
    except pydantic.ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc']) or '(root)'}: {error['msg']}"
            f" (got {error['input']!r})"
            for error in exc.errors()
        )
        raise ConfigurationError(f"invalid options for {what}: {problems}") from exc
