"""The service's HTTP API, version 1: its documents (:mod:`.models`) and their conversion
from and to the library's own types (:mod:`.wire`), shared by the service and the remote
client."""
