"""The configuration of the ``streamflow-data`` data manager in a ``streamflow.yml``, and
its JSON schema, generated from the model. The package ships the schema as a file, which
StreamFlow reads at every start without importing this module; a test checks that the
file is what :func:`json_schema` generates."""

from __future__ import annotations

import json
from typing import Any

import pydantic

from streamflow_data import CacheSettings, TransferSettings

__all__ = ["SCHEMA_ID", "DataManagerOptions", "json_schema"]

SCHEMA_ID = "https://streamflow-data.example.org/schemas/streamflow/data_manager.json"
"""The ``$id`` StreamFlow files the schema under."""


class DataManagerOptions(pydantic.BaseModel):
    """``dataManager.config`` of a ``streamflow.yml`` whose ``type`` is ``streamflow-data``."""

    model_config = pydantic.ConfigDict(extra="forbid", frozen=True)

    catalog: str = ":memory:"
    """The catalog file (SQLite; created if missing), which keeps the journal of every
    transfer (an interrupted one resumes where it stopped) and the replicas moved, and
    which lets several runs sharing it take turns writing a destination. ``:memory:``
    keeps nothing after the run."""
    transfer: TransferSettings = pydantic.Field(default_factory=TransferSettings)
    """The transfer engine's settings: block pool (the memory bound), chunking,
    concurrency, retries, verification (``docs/configuration.md``)."""
    cache: CacheSettings | None = None
    """A byte budget for the replicas copied to the local node; none by default."""


def json_schema() -> str:
    """The JSON schema StreamFlow validates the ``config`` against, as the shipped file
    holds it (:data:`~streamflow_data_streamflow.manager.SCHEMA_FILE`)."""
    schema: dict[str, Any] = DataManagerOptions.model_json_schema()
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        **schema,
    }
    return json.dumps(schema, indent=2) + "\n"
