"""Settings as frozen dataclasses, checked by pydantic only when a value is not a default.

Every settings class of the core (and the local connector's options) is a frozen, keyword-
only dataclass deriving from :class:`Settings`, its bounds declared with :func:`setting`.
Building one from its defaults imports nothing: the command line and an embedding process
that keep the defaults never load pydantic, which costs about 0.1 s of start-up here.
A value given explicitly is validated by pydantic in lax mode, as a pydantic model would
validate it (``5`` for a float becomes ``5.0``, ``"x"`` for an int is refused), so a
configuration file and a Python caller get the same checks and the same messages.

Mistakes are :class:`~streamflow_data.errors.ConfigurationError`; :func:`check` returns
them as :class:`Problem` values instead, so a caller validating several tables (the
configuration file) reports all of them at once, each under its key.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Collection, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Self, TypeVar

from streamflow_data.errors import ConfigurationError

if TYPE_CHECKING:
    import pydantic

__all__ = [
    "Problem",
    "Settings",
    "check",
    "describe",
    "is_secret",
    "mapping_problems",
    "parse_options",
    "redacted",
    "setting",
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


def setting(
    default: Any = dataclasses.MISSING,
    *,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
) -> Any:
    """A settings field: its default (none: the key is required) and its bounds."""
    given = (("ge", ge), ("gt", gt), ("le", le))
    bounds = {name: bound for name, bound in given if bound is not None}
    return dataclasses.field(default=default, metadata={"bounds": bounds})


@dataclasses.dataclass(frozen=True, kw_only=True)
class Settings:
    """Base of the settings dataclasses: validates on construction the values that are
    not defaults, and raises :class:`ConfigurationError` naming every wrong key."""

    kind: ClassVar[str] = "settings"
    """What the class configures, as error messages name it."""

    def __post_init__(self) -> None:
        given = {
            field.name: getattr(self, field.name)
            for field in dataclasses.fields(self)
            if not _is_default(field, getattr(self, field.name))
        }
        validated, problems = _check_fields(type(self), given)
        if problems:
            raise ConfigurationError(f"invalid {self.kind}: {describe(problems)}")
        for name, value in validated.items():
            object.__setattr__(self, name, value)  # lax mode may have converted it

    def replace(self, **changes: Any) -> Self:
        """A copy with ``changes``, validated."""
        return dataclasses.replace(self, **changes)


def _is_default(field: dataclasses.Field[Any], value: object) -> bool:
    default = field.default
    return default is not dataclasses.MISSING and type(value) is type(default) and value == default


def check(
    cls: type[_Options], options: object, key: tuple[str | int, ...] = ()
) -> tuple[_Options | None, list[Problem]]:
    """``options`` (a mapping of field names) validated into ``cls``, a :class:`Settings`
    dataclass or a pydantic model; or None and what is wrong, each problem under ``key``."""
    if not isinstance(options, Mapping):
        return None, mapping_problems(options, key)
    if not (isinstance(cls, type) and issubclass(cls, Settings)):
        return _check_model(cls, options, key)
    names = {field.name: field for field in dataclasses.fields(cls)}
    problems = unknown_keys(options, names, key)
    problems += [
        Problem((*key, name), "Field required")
        for name, field in names.items()
        if field.default is dataclasses.MISSING and name not in options
    ]
    validated, wrong = _check_fields(cls, {k: v for k, v in options.items() if k in names})
    problems += [dataclasses.replace(problem, key=(*key, *problem.key)) for problem in wrong]
    return (None, problems) if problems else (cls(**validated), [])


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


def _check_fields(
    cls: type[Settings], values: Mapping[str, object]
) -> tuple[dict[str, object], list[Problem]]:
    validated = {name: value for name, value in values.items() if _plainly_valid(cls, name, value)}
    rest = {name: value for name, value in values.items() if name not in validated}
    if not rest:
        return validated, []
    import pydantic

    problems: list[Problem] = []
    for name, value in rest.items():
        try:
            validated[name] = _field_adapter(cls, name).validate_python(value)
        except pydantic.ValidationError as exc:
            problems += _problems(exc, (name,))
    return validated, problems


_PLAIN = (str, int, float, bool)


def _plainly_valid(cls: type[Settings], name: str, value: object) -> bool:
    """Whether ``value`` needs no checking: exactly the plain type of an unbounded field
    (a path, a flag), which pydantic would pass through unchanged."""
    if type(value) not in _PLAIN:
        return False
    return not _bounds(cls, name) and _hints(cls)[name] is type(value)


def _bounds(cls: type[Settings], name: str) -> dict[str, Any]:
    field = next(field for field in dataclasses.fields(cls) if field.name == name)
    return dict(field.metadata["bounds"])


_HINTS: dict[type[Settings], dict[str, Any]] = {}


def _hints(cls: type[Settings]) -> dict[str, Any]:
    if (hints := _HINTS.get(cls)) is None:
        hints = _HINTS[cls] = typing.get_type_hints(cls)
    return hints


_ADAPTERS: dict[tuple[type[Settings], str], pydantic.TypeAdapter[Any]] = {}


def _field_adapter(cls: type[Settings], name: str) -> pydantic.TypeAdapter[Any]:
    """The validator of one field, its bounds included, built on first use."""
    if adapter := _ADAPTERS.get((cls, name)):
        return adapter
    import pydantic

    constrained: Any = typing.Annotated[_hints(cls)[name], pydantic.Field(**_bounds(cls, name))]
    adapter = _ADAPTERS[cls, name] = pydantic.TypeAdapter(constrained)
    return adapter


def _check_model(
    cls: type[_Options], options: Mapping[str, object], key: tuple[str | int, ...]
) -> tuple[_Options | None, list[Problem]]:
    import pydantic

    try:
        return pydantic.TypeAdapter(cls).validate_python(dict(options)), []
    except pydantic.ValidationError as exc:
        return None, _problems(exc, key)


def _problems(error: pydantic.ValidationError, key: tuple[str | int, ...]) -> list[Problem]:
    return [
        Problem(
            (*key, *problem["loc"]),
            problem["msg"],
            _NOT_GIVEN if problem["type"] == "missing" else problem["input"],
        )
        for problem in error.errors()
    ]
