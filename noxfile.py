"""Developer sessions: ``nox -s tests``, ``nox -s lint``, ``nox -s docs``, ``nox -s bench``,
``nox -s cwl``."""

from __future__ import annotations

import nox

nox.options.sessions = ["lint", "tests"]
nox.options.default_venv_backend = "venv"


@nox.session
def tests(session: nox.Session) -> None:
    """Run the test suite."""
    session.install(
        "-e", ".[test]", "-e", "plugins/ssh", "-e", "plugins/s3", "-e", "plugins/streamflow"
    )
    session.run("python", "-m", "pytest", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff (lint and format) and mypy --strict."""
    session.install(
        "-e",
        ".[lint,test]",
        "-e",
        "plugins/ssh",
        "-e",
        "plugins/s3",
        "-e",
        "plugins/streamflow",
        "nox",
    )
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run("mypy")


@nox.session
def docs(session: nox.Session) -> None:
    """Build the HTML documentation; any warning is an error."""
    # The conformance suite it documents imports pytest; the configuration reference
    # documents the plugins' options from their models.
    session.install(
        "-e", ".[docs,test]", "-e", "plugins/ssh", "-e", "plugins/s3", "-e", "plugins/streamflow"
    )
    session.run("sphinx-build", "-W", "--keep-going", "-b", "html", "docs", "docs/_build/html")


@nox.session
def bench(session: nox.Session) -> None:
    """Run every benchmark and write benchmarks/RESULTS.md."""
    session.install(
        "-e", ".[test]", "-e", "plugins/ssh", "-e", "plugins/s3", "-e", "plugins/streamflow"
    )
    session.run("python", "-m", "benchmarks.run_all", *session.posargs)


@nox.session
def cwl(session: nox.Session) -> None:
    """The CWL v1.2 conformance tests with StreamFlow, on its data manager and on ours,
    locally and on an SSH deployment; options go to ``tests.streamflow.cwl_suite``."""
    session.install("-e", ".[test]", "-e", "plugins/ssh", "-e", "plugins/streamflow")
    session.run("python", "-m", "tests.streamflow.cwl_suite", *session.posargs)
