"""Every command-line test keeps the default catalog out of the user's home."""

from __future__ import annotations

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
