"""Sphinx configuration: Markdown pages (MyST) and the API reference from docstrings."""

from __future__ import annotations

import sys
from pathlib import Path

import streamflow_data

sys.path.insert(0, str(Path(__file__).parent / "_ext"))  # sfd_reference: generated pages

project = "streamflow-data"
author = "the streamflow-data developers"
release = streamflow_data.__version__
extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
    "sfd_reference",
]
source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
exclude_patterns = ["_build"]
html_theme = "furo"
html_title = f"streamflow-data {release}"
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True, "show-inheritance": True}
myst_heading_anchors = 3
