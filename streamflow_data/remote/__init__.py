"""A client of the service: the DataManager contract over its HTTP API."""

from streamflow_data.remote.client import ServiceClient
from streamflow_data.remote.manager import RemoteDataManager

__all__ = ["RemoteDataManager", "ServiceClient"]
