"""``GET /metrics``: the service's counters in the Prometheus text format (version 0.0.4)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from streamflow_data.transfer.stats import Statistics

__all__ = ["CONTENT_TYPE", "render_metrics"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_PREFIX = "streamflow_data_"


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _family(
    name: str, kind: str, text: str, samples: Iterable[tuple[Mapping[str, str], float]]
) -> list[str]:
    lines = [f"# HELP {_PREFIX}{name} {text}", f"# TYPE {_PREFIX}{name} {kind}"]
    for labels, value in samples:
        inner = ",".join(f'{key}="{_label(item)}"' for key, item in labels.items())
        lines.append(
            f"{_PREFIX}{name}{{{inner}}} {value!r}" if inner else f"{_PREFIX}{name} {value!r}"
        )
    return lines


def render_metrics(
    statistics: Statistics,
    transfers: Mapping[str, int],
    buffer_capacity: int,
    replicas: int,
) -> str:
    """The exposition of ``statistics``, the transfers by state, the block pool's size and
    the number of replicas in the graph."""
    places = [
        ({"deployment": location.deployment, "location": location.name}, totals)
        for location, totals in statistics.locations.items()
    ]
    cache = statistics.cache
    lines = [
        *_family(
            "read_bytes_total",
            "counter",
            "Bytes read from a location.",
            ((labels, float(t.bytes_read)) for labels, t in places),
        ),
        *_family(
            "written_bytes_total",
            "counter",
            "Bytes written to a location.",
            ((labels, float(t.bytes_written)) for labels, t in places),
        ),
        *_family(
            "read_rate_bytes_per_second",
            "gauge",
            "Bytes per second of one read stream from a location, over the service's run.",
            ((labels, t.read_rate) for labels, t in places),
        ),
        *_family(
            "write_rate_bytes_per_second",
            "gauge",
            "Bytes per second of one write stream to a location, over the service's run.",
            ((labels, t.write_rate) for labels, t in places),
        ),
        *_family(
            "errors_total",
            "counter",
            "Errors seen, retried ones included, by type.",
            (({"type": name}, float(count)) for name, count in sorted(statistics.errors.items())),
        ),
        *_family(
            "retries_total", "counter", "Operations tried again.", [({}, float(statistics.retries))]
        ),
        *_family(
            "transfers",
            "gauge",
            "Transfers the service holds, by state.",
            (({"state": state}, float(count)) for state, count in transfers.items()),
        ),
        *_family(
            "cache_bytes_used",
            "gauge",
            "Bytes the local replica cache holds or has reserved.",
            [({}, float(cache.bytes_used))],
        ),
        *_family(
            "cache_budget_bytes", "gauge", "The local cache budget.", [({}, float(cache.budget))]
        ),
        *_family(
            "cache_hits_total", "counter", "Uses of a cached replica.", [({}, float(cache.hits))]
        ),
        *_family(
            "cache_misses_total",
            "counter",
            "Copies fetched into the cache.",
            [({}, float(cache.misses))],
        ),
        *_family(
            "cache_evictions_total", "counter", "Replicas evicted.", [({}, float(cache.evictions))]
        ),
        *_family(
            "block_pool_bytes_in_use",
            "gauge",
            "Memory held by transfer blocks when the last transfer ended.",
            [({}, float(statistics.buffer_bytes_in_use))],
        ),
        *_family(
            "block_pool_peak_bytes",
            "gauge",
            "The most memory transfer blocks have taken at once.",
            [({}, float(statistics.buffer_peak_bytes))],
        ),
        *_family(
            "block_pool_capacity_bytes",
            "gauge",
            "The block pool's bound (block_count x block_size).",
            [({}, float(buffer_capacity))],
        ),
        *_family("replicas", "gauge", "Replicas in the replica graph.", [({}, float(replicas))]),
    ]
    return "\n".join(lines) + "\n"
