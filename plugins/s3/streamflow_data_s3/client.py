"""An aiobotocore session whose every file read happens before the event loop needs it.

botocore reads its data files (endpoints, the S3 model and rules, retry settings) and the
shared AWS configuration lazily, with blocking calls, while a client is created; it also
looks for optional files that do not exist, every time. :func:`prepared_session` does all
of that in the calling thread (the connector calls it through ``asyncio.to_thread``), with
a loader that also remembers which files are missing, so that creating and using the
client on the event loop never touches the disk.
"""

from __future__ import annotations

import contextlib
from typing import Any

from aiobotocore.session import AioSession
from botocore.exceptions import DataNotFoundError
from botocore.loaders import Loader

from streamflow_data_s3.options import S3Options

__all__ = ["prepared_session"]

# What creating an S3 client and its ListObjectsV2 paginator loads (botocore 1.3x-1.4x).
_DATA = ("sdk-default-configuration", "partitions", "_retry", "endpoints")
_S3_MODELS = ("service-2", "endpoint-rule-set-1", "paginators-1")


class _RememberingLoader(Loader):  # type: ignore[misc]  # botocore is untyped
    """botocore's loader, remembering missing files as well as found ones."""

    def __init__(self, **arguments: Any) -> None:
        super().__init__(**arguments)
        self._missing: set[str] = set()

    def load_data_with_path(self, name: str) -> Any:
        if name in self._missing:
            raise DataNotFoundError(data_path=name)
        try:
            return super().load_data_with_path(name)
        except DataNotFoundError:
            self._missing.add(name)
            raise


def prepared_session(options: S3Options) -> AioSession:
    """A session for ``options`` with every file a client reads already read (blocking)."""
    session = AioSession(profile=options.profile)
    _ = session.full_config  # the shared configuration and credentials files
    loader = _RememberingLoader()
    session.register_component("data_loader", loader)
    for name in _DATA:
        loader.load_data(name)
    for kind in _S3_MODELS:
        loader.load_service_model("s3", kind)
        loader.load_service_model("s3", kind, "2006-03-01")
        with contextlib.suppress(DataNotFoundError):  # remembered as missing from now on
            loader.load_data(f"s3/2006-03-01/{kind}.sdk-extras")
    return session
