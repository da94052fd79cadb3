"""Settings as frozen pydantic models, and the problems of a configuration, by key.

Every settings model of the core (and the local connector's options) derives from
:class:`Settings`: frozen, with no unknown key, and a mistake raised as
:class:`~streamflow_data.errors.ConfigurationError` naming every wrong key rather than
pydantic's own error. Plugins validate their options with pydantic models of their own
(:func:`parse_options`).

:func:`check` returns mistakes as :class:`Problem` values instead, so a caller validating
several tables (the configuration file) reports all of them at once, each under its key.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Collection, Mapping, Sequence
from typing import Any, ClassVar, Self, TypeVar

import pydantic

from streamflow_data.errors import ConfigurationError

__all__ = [
    "Problem",
    "Settings",
    "check",
    "describe",
    "is_secret",
    "mapping_problems",
    "parse_options",
    "redacted",
    "unknown_keys",
]

_Options = TypeVar("_Options")


class _NotGiven:
    def __repr__(self) -> str:
        return "<not given>"


_NOT_GIVEN: Any = _NotGiven()


@dataclasses.dataclass(frozen=True, slots=True)
class Problem:
    """One mistake: where (keys from the top), what was expected, and what was found."""

    key: tuple[str | int, ...]
    message: str
    value: object = _NOT_GIVEN
    """What was found there; not given when the key is missing."""

    def __str__(self) -> str:
        where = ".".join(str(part) for part in self.key) or "(top level)"
        hidden = (
            self.value is _NOT_GIVEN
            or isinstance(self.value, Mapping)  # a whole table: it may hold secrets
            or any(isinstance(part, str) and is_secret(part) for part in self.key)
        )
        found = "" if hidden else f" (got {self.value!r})"
        return f"{where}: {self.message}{found}"


_SECRET_WORDS = ("secret", "password", "passphrase", "token", "credential")


def is_secret(key: str) -> bool:
    """Whether an option named ``key`` holds a secret, judged by its name (so that a
    misspelled one counts too): its value is never shown in a message or a repr."""
    lowered = key.lower()
    return any(word in lowered for word in _SECRET_WORDS)


def redacted(options: Mapping[str, Any]) -> dict[str, Any]:
    """``options`` with the value of every secret key (:func:`is_secret`) masked."""
    return {key: "**********" if is_secret(key) else value for key, value in options.items()}


def describe(problems: Sequence[Problem]) -> str:
    """The problems as one line, in the order they were found."""
    return "; ".join(map(str, problems))


class Settings(pydantic.BaseModel):
    """Base of the settings models: frozen, no unknown key, and a mistake raised as
    :class:`ConfigurationError` naming every wrong key."""

    model_config = pydantic.ConfigDict(frozen=True, extra="forbid")

    kind: ClassVar[str] = "settings"
    """What the class configures, as error messages name it."""

    def __init__(self, **values: Any) -> None:
        try:
            super().__init__(**values)
        except pydantic.ValidationError as exc:
            problems = describe(_problems(exc, ()))
            raise ConfigurationError(f"invalid {self.kind}: {problems}") from None

    def replace(self, **changes: Any) -> Self:
        """A copy with ``changes``, validated."""
        values = {name: getattr(self, name) for name in type(self).model_fields}
        return type(self)(**{**values, **changes})


def check(
    cls: type[_Options], options: object, key: tuple[str | int, ...] = ()
) -> tuple[_Options | None, list[Problem]]:
    """``options`` (a mapping of field names) validated into ``cls``, a pydantic model;
    or None and what is wrong, each problem under ``key``."""
    if not isinstance(options, Mapping):
        return None, mapping_problems(options, key)
    try:
        if issubclass(cls, Settings):  # validated as pydantic does, its problems kept apart
            settings = cls.__new__(cls)
            pydantic.BaseModel.__init__(settings, **{str(k): v for k, v in options.items()})
            return typing.cast(_Options, settings), []
        return pydantic.TypeAdapter(cls).validate_python(dict(options)), []
    except pydantic.ValidationError as exc:
        return None, _problems(exc, key)


def unknown_keys(
    options: Mapping[str, object], known: Collection[str], key: tuple[str | int, ...]
) -> list[Problem]:
    """A problem for each key of ``options`` (found under ``key``) not among ``known``."""
    return [
        Problem((*key, name), "Extra inputs are not permitted", value)
        for name, value in options.items()
        if name not in known
    ]


def mapping_problems(value: object, key: tuple[str | int, ...]) -> list[Problem]:
    """The problem of ``value`` under ``key`` not being a mapping (a table), if it is not."""
    if isinstance(value, Mapping):
        return []
    return [Problem(key, "Input should be a valid dictionary", value)]


def parse_options(cls: type[_Options], options: Mapping[str, object], what: str) -> _Options:
    """``options`` validated into ``cls`` (see :func:`check`); a
    :class:`ConfigurationError` naming ``what`` was configured and every wrong key."""
    result, problems = check(cls, options)
    if result is None:
        raise ConfigurationError(f"invalid options for {what}: {describe(problems)}")
    return result


def _problems(error: pydantic.ValidationError, key: tuple[str | int, ...]) -> list[Problem]:
    return [
        Problem(
            (*key, *problem["loc"]),
            problem["msg"],
            _NOT_GIVEN if problem["type"] == "missing" else problem["input"],
        )
        for problem in error.errors()
    ]
