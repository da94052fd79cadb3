"""The data manager: the replica graph, the catalog, the cache, and transfers.

:mod:`.default` holds :class:`DefaultDataManager`; :mod:`.claims`, the bookkeeping of the
destinations its transfers are writing.
"""

from streamflow_data.contract import DataManager
from streamflow_data.manager.default import LOCAL_DEPLOYMENT, DefaultDataManager

__all__ = ["LOCAL_DEPLOYMENT", "DataManager", "DefaultDataManager"]
