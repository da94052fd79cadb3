"""The DataManager contract a workflow manager programs against (StreamFlow's)."""

from __future__ import annotations

import abc
from collections.abc import Sequence
from types import TracebackType
from typing import Self

from streamflow_data.model import DataLocation, DataType, ExecutionLocation

__all__ = ["DataManager"]


class DataManager(abc.ABC):
    """Knows where every replica of every path lives, and moves data between locations.

    The contract a workflow manager programs against (StreamFlow's ``DataManager``). Use it
    as an async context manager, or call :meth:`close` when done.
    """

    @abc.abstractmethod
    def register_path(
        self,
        location: ExecutionLocation,
        path: str,
        relpath: str | None = None,
        data_type: DataType = DataType.PRIMARY,
    ) -> DataLocation:
        """Record that ``path`` on ``location`` holds data (its parents are recorded too)."""

    @abc.abstractmethod
    def register_relation(self, src_location: DataLocation, dst_location: DataLocation) -> None:
        """Record that two replicas hold the same data."""

    @abc.abstractmethod
    def invalidate_location(self, location: ExecutionLocation, path: str) -> None:
        """Record that ``path`` and everything below it on ``location`` is gone."""

    @abc.abstractmethod
    def get_data_locations(
        self,
        path: str,
        deployment: str | None = None,
        location_name: str | None = None,
        data_type: DataType | None = None,
    ) -> list[DataLocation]:
        """Every valid replica of the data at ``path``, narrowed by the filters."""

    @abc.abstractmethod
    async def get_source_location(self, path: str, dst_deployment: str) -> DataLocation | None:
        """The replica a transfer of ``path`` to ``dst_deployment`` should read, or None."""

    @abc.abstractmethod
    async def transfer_data(
        self,
        src_location: ExecutionLocation,
        src_path: str,
        dst_locations: Sequence[ExecutionLocation],
        dst_path: str,
        writable: bool = False,
    ) -> None:
        """Copy ``src_path`` on ``src_location`` to ``dst_path`` on every destination."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Release connections, threads and other resources."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()
