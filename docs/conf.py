"""Sphinx configuration: Markdown pages (MyST) and the API reference from docstrings."""

from __future__ import annotations

import streamflow_data

project = "streamflow-data"
author = "the streamflow-data developers"
release = streamflow_data.__version__
extensions = ["myst_parser", "sphinx.ext.autodoc", "sphinx.ext.napoleon", "sphinx.ext.viewcode"]
source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
exclude_patterns = ["_build"]
html_theme = "furo"
html_title = f"streamflow-data {release}"
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True, "show-inheritance": True}
myst_heading_anchors = 3
