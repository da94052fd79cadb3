"""Counters every transfer adds to: bytes and time per location, errors by type."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from streamflow_data.model import ExecutionLocation

__all__ = ["CacheStatistics", "LocationStatistics", "Statistics"]


@dataclass(slots=True)
class LocationStatistics:
    """Data moved from and to one location, and the time spent moving it."""

    bytes_read: int = 0
    """Bytes read from the location (downloads from it)."""
    bytes_written: int = 0
    """Bytes written to the location (uploads to it)."""
    read_seconds: float = 0.0
    """Time spent in reads, summed over concurrent reads."""
    write_seconds: float = 0.0
    """Time spent in writes, summed over concurrent writes."""

    @property
    def read_rate(self) -> float:
        """Bytes per second of one read stream from the location."""
        return self.bytes_read / self.read_seconds if self.read_seconds else 0.0

    @property
    def write_rate(self) -> float:
        """Bytes per second of one write stream to the location."""
        return self.bytes_written / self.write_seconds if self.write_seconds else 0.0


@dataclass(slots=True)
class CacheStatistics:
    """How the local replica cache is doing (all zero without a cache budget)."""

    hits: int = 0
    """Uses of a cached replica: as a transfer source or the chosen source of a path."""
    misses: int = 0
    """Copies fetched into the cache."""
    evictions: int = 0
    """Replicas deleted to make room."""
    bytes_evicted: int = 0
    """Bytes those replicas held."""
    bytes_used: int = 0
    """Bytes the cache holds or has reserved for copies in flight, now."""
    budget: int = 0
    """The configured budget, in bytes."""


class Statistics:
    """Per-location totals and rates, and every error seen, counted by type.

    Errors include those a retry then recovered from, as CloudFusion's exception
    statistics do: they show a flaky location before it fails a transfer.
    """

    def __init__(self) -> None:
        self.locations: dict[ExecutionLocation, LocationStatistics] = {}
        """Totals per location."""
        self.errors: Counter[str] = Counter()
        """Errors seen, by exception type name."""
        self.retries = 0
        """Operations tried again after a retryable error."""
        self.buffer_peak_bytes = 0
        """The most memory file data has taken at once (blocks held x block size)."""
        self.buffer_bytes_in_use = 0
        """Memory held by blocks when the last transfer ended: 0 unless others still run."""
        self.cache = CacheStatistics()
        """The local replica cache's hits, misses, evictions and bytes."""

    def of(self, location: ExecutionLocation) -> LocationStatistics:
        """The totals of ``location`` (created empty on first use)."""
        found = self.locations.get(location)
        if found is None:
            found = self.locations[location] = LocationStatistics()
        return found

    def read(self, location: ExecutionLocation, size: int, seconds: float) -> None:
        """Record a read of ``size`` bytes from ``location``."""
        totals = self.of(location)
        totals.bytes_read += size
        totals.read_seconds += seconds

    def wrote(self, location: ExecutionLocation, size: int, seconds: float) -> None:
        """Record a write of ``size`` bytes to ``location``."""
        totals = self.of(location)
        totals.bytes_written += size
        totals.write_seconds += seconds

    def error(self, error: BaseException) -> None:
        """Count an error."""
        self.errors[type(error).__name__] += 1
