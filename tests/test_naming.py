"""Finding the location a person or a client names (the CLI and the service share it)."""

from __future__ import annotations

import re
from collections.abc import Sequence

import pytest

from streamflow_data import (
    AmbiguousLocationError,
    ExecutionLocation,
    UnknownDeploymentError,
    UnknownLocationError,
)
from streamflow_data.manager.naming import resolve_location

ONE = ExecutionLocation("one", "only")
TWO = [ExecutionLocation("two", "a"), ExecutionLocation("two", "b")]


class Known:
    def locations(self, deployment: str) -> Sequence[ExecutionLocation]:
        found = {"one": [ONE], "two": TWO}.get(deployment)
        if found is None:
            raise UnknownDeploymentError(deployment)
        return found


@pytest.mark.parametrize(
    ("deployment", "name", "served", "expected"),
    [
        ("one", None, True, ONE),
        ("one", "only", True, ONE),
        ("two", "b", True, TWO[1]),
        ("gone", "x", False, ExecutionLocation("gone", "x")),
    ],
)
def test_named_locations_are_found(
    deployment: str, name: str | None, served: bool, expected: ExecutionLocation
) -> None:
    assert resolve_location(Known(), deployment, name, served=served) == expected


@pytest.mark.parametrize(
    ("deployment", "name", "served", "error", "words"),
    [
        ("two", None, True, AmbiguousLocationError, "has 2 locations: name one of a, b"),
        ("one", "other", True, UnknownLocationError, "no location 'other' (its locations: only)"),
        ("gone", "x", True, UnknownDeploymentError, "gone"),
        ("gone", None, False, UnknownDeploymentError, "gone"),
    ],
)
def test_what_cannot_be_found_is_a_typed_error(
    deployment: str, name: str | None, served: bool, error: type[Exception], words: str
) -> None:
    with pytest.raises(error, match=re.escape(words)):
        resolve_location(Known(), deployment, name, served=served)
