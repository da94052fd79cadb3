"""The ``streamflow-data`` command line (the console script runs :func:`main`)."""

from streamflow_data.cli.main import main

__all__ = ["main"]
