"""Reference pages generated from the code: settings from their classes, commands
from the argument parser. What the docs say is then what the code accepts."""

from __future__ import annotations

import ast
import dataclasses
import importlib
import inspect
import itertools
import textwrap
import typing
from typing import Any

from docutils import nodes
from docutils.statemachine import StringList
from pydantic_core import PydanticUndefined
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective
from sphinx.util.nodes import nested_parse_with_titles


def _attribute_docs(model: type[Any]) -> dict[str, str]:
    """The docstrings written under each field of ``model`` and its bases."""
    found: dict[str, str] = {}
    for cls in reversed(model.__mro__):
        if cls is object:
            continue
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
        except (OSError, TypeError):
            continue
        body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
        for statement, following in itertools.pairwise(body):
            if (
                isinstance(statement, ast.AnnAssign)
                and isinstance(statement.target, ast.Name)
                and isinstance(following, ast.Expr)
                and isinstance(following.value, ast.Constant)
                and isinstance(following.value.value, str)
            ):
                found[statement.target.id] = inspect.cleandoc(following.value.value)
    return found


def _type_name(annotation: Any) -> str:
    text = getattr(annotation, "__name__", None) if isinstance(annotation, type) else None
    return text or str(annotation).replace("typing.", "")


def _default(field: Any) -> str:
    if field.default not in (PydanticUndefined, dataclasses.MISSING):
        return f"``{field.default!r}``"
    if field.default_factory not in (None, dataclasses.MISSING):
        return f"``{field.default_factory()!r}``"
    return "required"


def _fields(model: type[Any]) -> list[tuple[str, Any, Any, dict[str, Any]]]:
    """Name, type, field and bounds of each field of a settings dataclass or a pydantic
    model."""
    if dataclasses.is_dataclass(model):
        hints = typing.get_type_hints(model)
        return [
            (field.name, hints[field.name], field, dict(field.metadata["bounds"]))
            for field in dataclasses.fields(model)
        ]
    return [
        (name, field.annotation, field, _model_bounds(field))
        for name, field in model.model_fields.items()
    ]


def _model_bounds(field: Any) -> dict[str, Any]:
    return {
        key: getattr(item, key)
        for item in field.metadata
        for key in ("ge", "gt", "le", "lt", "min_length")
        if getattr(item, key, None) is not None
    }


class SettingsReference(SphinxDirective):
    """``.. settings-reference:: module.Model`` renders every field of the model."""

    required_arguments = 1

    def run(self) -> list[nodes.Node]:
        module_name, _, name = self.arguments[0].rpartition(".")
        model = getattr(importlib.import_module(module_name), name)
        docs = _attribute_docs(model)
        lines: list[str] = []
        for field_name, annotation, field, bounds in _fields(model):
            constraints = ", ".join(f"{key} {bound}" for key, bound in bounds.items())
            lines += [
                f"``{field_name}``",
                f"   *{_type_name(annotation)}*, default {_default(field)}"
                + (f" ({constraints})" if constraints else ""),
                "",
                *(
                    f"   {line}"
                    for line in (
                        docs.get(field_name) or getattr(field, "description", None) or ""
                    ).splitlines()
                ),
                "",
            ]
        container = nodes.definition_list()
        self.state.nested_parse(StringList(lines), self.content_offset, container)
        return list(container.children) if container.children else [container]


class CommandReference(SphinxDirective):
    """``.. command-reference::`` renders the help of every ``streamflow-data`` command."""

    def run(self) -> list[nodes.Node]:
        from streamflow_data.cli.main import command_parsers

        parser, commands = command_parsers()
        result: list[nodes.Node] = []
        sections = [("streamflow-data", parser)]
        sections += [(f"streamflow-data {name}", each) for name, each in commands.items()]
        for title, each in sections:
            section = nodes.section(ids=[nodes.make_id(title)])
            section += nodes.title(text=title)
            each.formatter_class = _wide_formatter
            section += nodes.literal_block(text=each.format_help())
            result.append(section)
        return result


def _schema_type(schema: dict[str, Any]) -> str:
    """A JSON schema's type in a few words (Markdown), a model's name linked to its entry."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[1]
        return f"[`{name}`](#api-{name.lower()})"
    for key in ("anyOf", "oneOf"):
        if key in schema:
            return " or ".join(_schema_type(choice) for choice in schema[key])
    if "const" in schema:
        return f"`{schema['const']!r}`"
    if "enum" in schema:
        return " or ".join(f"`{value!r}`" for value in schema["enum"])
    kind = schema.get("type", "any")
    if kind == "array":
        return f"list of {_schema_type(schema.get('items', {}))}"
    if kind == "object" and "additionalProperties" in schema:
        return f"map to {_schema_type(schema['additionalProperties'])}"
    return f"*{kind}*"


def _operation(method: str, path: str, operation: dict[str, Any]) -> list[str]:
    lines = [f"### `{method.upper()} {path}`", "", operation["summary"] + ".", ""]
    for parameter in operation["parameters"]:
        need = "required" if parameter["required"] else "optional"
        described = f": {parameter['description']}" if parameter.get("description") else ""
        lines.append(
            f"- `{parameter['name']}` ({parameter['in']}, {need}), "
            f"{_schema_type(parameter['schema'])}{described}"
        )
    if "requestBody" in operation:
        schema = operation["requestBody"]["content"]["application/json"]["schema"]
        lines.append(f"- body: {_schema_type(schema)}")
    for status, answer in operation["responses"].items():
        if status.endswith("XX") or "content" not in answer:
            continue
        [(media, content)] = answer["content"].items()
        schema = content.get("x-event-schema", content["schema"])
        events = "server-sent events of " if media == "text/event-stream" else ""
        lines.append(f"- answer {status}: {events}{_schema_type(schema)}")
    return [*lines, ""]


def _model(name: str, schema: dict[str, Any]) -> list[str]:
    lines = [f"(api-{name.lower()})=", f"### `{name}`", "", schema.get("description", ""), ""]
    required = set(schema.get("required", ()))
    for field, spec in schema.get("properties", {}).items():
        need = "" if field in required else " (optional)"
        described = f": {' '.join(spec['description'].split())}" if "description" in spec else ""
        lines.append(f"- `{field}`{need}, {_schema_type(spec)}{described}")
    return [*lines, ""]


class ApiReference(SphinxDirective):
    """``api-reference`` renders the service's OpenAPI document: each operation with its
    parameters, body and answer, then each model's fields."""

    def run(self) -> list[nodes.Node]:
        from streamflow_data.service import api_document

        document = api_document()
        lines = []
        for path, operations in document["paths"].items():
            for method, operation in operations.items():
                lines += _operation(method, path, operation)
        for name, schema in document["components"]["schemas"].items():
            lines += _model(name, schema)
        container = nodes.section()
        nested_parse_with_titles(self.state, StringList(lines), container, self.content_offset)
        return list(container.children)


def _wide_formatter(prog: str) -> Any:
    import argparse

    return argparse.HelpFormatter(prog, width=90, max_help_position=32)


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_directive("settings-reference", SettingsReference)
    app.add_directive("command-reference", CommandReference)
    app.add_directive("api-reference", ApiReference)
    return {"parallel_read_safe": True}
