"""Settings models: bounds and types checked by pydantic, mistakes as our error."""

from __future__ import annotations

import pydantic
import pytest

from streamflow_data import CacheSettings, CatalogSettings, ConfigurationError, TransferSettings
from streamflow_data.validation import Problem, check, parse_options


def test_explicit_values_are_checked_and_converted_like_a_pydantic_model() -> None:
    assert TransferSettings(retry_delay=5).retry_delay == 5.0
    assert isinstance(TransferSettings(retry_delay=5).retry_delay, float)
    with pytest.raises(ConfigurationError) as raised:
        TransferSettings(chunk_size=1, block_count="many")  # type: ignore[arg-type]
    message = str(raised.value)
    assert message.startswith("invalid transfer settings: chunk_size: Input should be greater")
    assert "block_count: Input should be a valid integer" in message
    with pytest.raises(ConfigurationError, match="lock_policy: Input should be 'wait' or 'fail'"):
        CatalogSettings(lock_policy="sometimes")  # type: ignore[arg-type]


def test_replace_validates_the_changes() -> None:
    settings = TransferSettings(block_size=65536)
    assert settings.replace(block_count=4).memory_bound == 4 * 65536
    with pytest.raises(ConfigurationError, match="block_count"):
        settings.replace(block_count=1)


def test_settings_are_frozen_and_hashable() -> None:
    settings = TransferSettings()
    with pytest.raises(pydantic.ValidationError, match="frozen"):
        settings.block_count = 3
    assert hash(settings) == hash(TransferSettings())


def test_check_reports_every_problem_under_its_key() -> None:
    result, problems = check(CacheSettings, {"when_full": "x", "extra": 1}, ("cache",))
    assert result is None
    assert [str(problem) for problem in problems] == [
        "cache.budget: Field required",
        "cache.when_full: Input should be 'wait' or 'fail' (got 'x')",
        "cache.extra: Extra inputs are not permitted (got 1)",
    ]
    assert check(CacheSettings, [1], ("cache",)) == (
        None,
        [Problem(("cache",), "Input should be a valid dictionary", [1])],
    )
    assert check(CacheSettings, {"budget": "10"}) == (CacheSettings(budget=10), [])


class _PluginOptions(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")
    hosts: list[str] = pydantic.Field(min_length=1)


def test_plugins_may_keep_pydantic_models() -> None:
    assert parse_options(_PluginOptions, {"hosts": ["a"]}, "x").hosts == ["a"]
    with pytest.raises(ConfigurationError, match=r"invalid options for x: hosts: List should"):
        parse_options(_PluginOptions, {"hosts": []}, "x")
