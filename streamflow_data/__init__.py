"""streamflow-data: where every replica of every path lives, and moving the bytes.

The public API is what this module exports; everything else is an implementation detail
that may change between releases.
"""

from streamflow_data.catalog import TransferRecord
from streamflow_data.config import (
    CacheSettings,
    CatalogSettings,
    ServiceSettings,
    TransferSettings,
)
from streamflow_data.configfile import Configuration, DeploymentConfig, load_configuration
from streamflow_data.connectors.base import (
    Capabilities,
    Connector,
    CopyItem,
    FileKind,
    FileStat,
    LinkItem,
    MetadataItem,
    Reader,
    WalkEntry,
    WriteItem,
    Writer,
)
from streamflow_data.connectors.local import LocalConnector, LocalOptions
from streamflow_data.connectors.registry import (
    connector_class,
    connector_types,
    create_connector,
)
from streamflow_data.delivery import Delivery, DeliveryFile, ManifestEntry, read_manifest
from streamflow_data.errors import (
    AmbiguousLocationError,
    AuthenticationError,
    CacheFullError,
    CatalogError,
    ChecksumMismatchError,
    ConfigurationError,
    ConnectorError,
    ConnectorNotFoundError,
    InvalidPathError,
    LocationUnreachableError,
    NameTooLongError,
    NotDirectoryError,
    PathExistsError,
    PathNotFoundError,
    PermissionDeniedError,
    SourceChangedError,
    StorageFullError,
    StreamFlowDataError,
    TransferCancelledError,
    TransferError,
    TransferFailure,
    TransferLockedError,
    UnknownDeploymentError,
    UnknownLocationError,
    UnknownPathError,
    UnknownTransferError,
    UnsafePathError,
    UnsupportedOperationError,
)
from streamflow_data.manager import DataManager, DefaultDataManager
from streamflow_data.mapper import RemotePathMapper
from streamflow_data.model import DataLocation, DataType, Digest, ExecutionLocation, Verification
from streamflow_data.policy import DefaultSourcePolicy, SourcePolicy
from streamflow_data.transfer.events import (
    DestinationProgress,
    TransferListener,
    TransferProgress,
)
from streamflow_data.transfer.stats import CacheStatistics, LocationStatistics, Statistics

__version__ = "0.1.0"

__all__ = [
    "AmbiguousLocationError",
    "AuthenticationError",
    "CacheFullError",
    "CacheSettings",
    "CacheStatistics",
    "Capabilities",
    "CatalogError",
    "CatalogSettings",
    "ChecksumMismatchError",
    "Configuration",
    "ConfigurationError",
    "Connector",
    "ConnectorError",
    "ConnectorNotFoundError",
    "CopyItem",
    "DataLocation",
    "DataManager",
    "DataType",
    "DefaultDataManager",
    "DefaultSourcePolicy",
    "Delivery",
    "DeliveryFile",
    "DeploymentConfig",
    "DestinationProgress",
    "Digest",
    "ExecutionLocation",
    "FileKind",
    "FileStat",
    "InvalidPathError",
    "LinkItem",
    "LocalConnector",
    "LocalOptions",
    "LocationStatistics",
    "LocationUnreachableError",
    "ManifestEntry",
    "MetadataItem",
    "NameTooLongError",
    "NotDirectoryError",
    "PathExistsError",
    "PathNotFoundError",
    "PermissionDeniedError",
    "Reader",
    "RemotePathMapper",
    "ServiceSettings",
    "SourceChangedError",
    "SourcePolicy",
    "Statistics",
    "StorageFullError",
    "StreamFlowDataError",
    "TransferCancelledError",
    "TransferError",
    "TransferFailure",
    "TransferListener",
    "TransferLockedError",
    "TransferProgress",
    "TransferRecord",
    "TransferSettings",
    "UnknownDeploymentError",
    "UnknownLocationError",
    "UnknownPathError",
    "UnknownTransferError",
    "UnsafePathError",
    "UnsupportedOperationError",
    "Verification",
    "WalkEntry",
    "WriteItem",
    "Writer",
    "__version__",
    "connector_class",
    "connector_types",
    "create_connector",
    "load_configuration",
    "read_manifest",
]
