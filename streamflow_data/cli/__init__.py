"""The ``streamflow-data`` command line: :func:`main` runs it in-process; the console
script runs :func:`console`."""

from streamflow_data.cli.main import console, main

__all__ = ["console", "main"]
