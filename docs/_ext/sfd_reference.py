"""Reference pages generated from the code: settings from the pydantic models, commands
from the argument parser. What the docs say is then what the code accepts."""

from __future__ import annotations

import ast
import importlib
import inspect
import itertools
import textwrap
from typing import Any

import pydantic
from docutils import nodes
from docutils.statemachine import StringList
from pydantic_core import PydanticUndefined
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective


def _attribute_docs(model: type[Any]) -> dict[str, str]:
    """The docstrings written under each field of ``model`` and its bases."""
    found: dict[str, str] = {}
    for cls in reversed(model.__mro__):
        if not (isinstance(cls, type) and issubclass(cls, pydantic.BaseModel)):
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
    if field.default is not PydanticUndefined:
        return f"``{field.default!r}``"
    if field.default_factory is not None:
        return f"``{field.default_factory()!r}``"
    return "required"


class SettingsReference(SphinxDirective):
    """``.. settings-reference:: module.Model`` renders every field of the model."""

    required_arguments = 1

    def run(self) -> list[nodes.Node]:
        module_name, _, name = self.arguments[0].rpartition(".")
        model = getattr(importlib.import_module(module_name), name)
        docs = _attribute_docs(model)
        lines: list[str] = []
        for field_name, field in model.model_fields.items():
            constraints = ", ".join(
                f"{key} {getattr(item, key)}"
                for item in field.metadata
                for key in ("ge", "gt", "le", "lt", "min_length")
                if getattr(item, key, None) is not None
            )
            lines += [
                f"``{field_name}``",
                f"   *{_type_name(field.annotation)}*, default {_default(field)}"
                + (f" ({constraints})" if constraints else ""),
                "",
                *(
                    f"   {line}"
                    for line in (docs.get(field_name) or field.description or "").splitlines()
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


def _wide_formatter(prog: str) -> Any:
    import argparse

    return argparse.HelpFormatter(prog, width=90, max_help_position=32)


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_directive("settings-reference", SettingsReference)
    app.add_directive("command-reference", CommandReference)
    return {"parallel_read_safe": True}
