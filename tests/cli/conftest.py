"""Every command-line test keeps the default catalog out of the user's home."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def state_directory(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """A private state directory (the default catalog's home), and no configuration."""
    state = tmp_path_factory.mktemp("state")
    monkeypatch.setenv("XDG_STATE_HOME", str(state))
    monkeypatch.delenv("STREAMFLOW_DATA_CATALOG", raising=False)
    monkeypatch.delenv("STREAMFLOW_DATA_CONFIG", raising=False)
    return state


@pytest.fixture(autouse=True)
def cli_log_handlers() -> Iterator[None]:
    """In-process runs of the command line leave their stderr handler behind: remove it,
    so that a later test's records do not go to a stream pytest has closed."""
    yield
    for logger in (logging.getLogger(), logging.getLogger("streamflow_data")):
        for handler in [h for h in logger.handlers if h.get_name() == "streamflow-data-cli"]:
            logger.removeHandler(handler)
