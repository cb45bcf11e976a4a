"""Summaries of latency samples and server samples, as plain numbers for the JSON."""

from __future__ import annotations

import math
from array import array
from collections.abc import Sequence

ON_TIME_MS = 250.0


def percentile(ordered: Sequence[int], fraction: float) -> int:
    """Nearest-rank percentile of an already sorted sequence (0 when empty)."""
    if not ordered:
        return 0
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def latency_summary(latencies_us: array) -> dict[str, float]:
    ordered = sorted(latencies_us)
    on_time = sum(1 for value in ordered if value <= ON_TIME_MS * 1000)
    return {
        "samples": len(ordered),
        "p50_ms": round(percentile(ordered, 0.50) / 1000, 1),
        "p90_ms": round(percentile(ordered, 0.90) / 1000, 1),
        "p99_ms": round(percentile(ordered, 0.99) / 1000, 1),
        "max_ms": round((ordered[-1] if ordered else 0) / 1000, 1),
        "mean_ms": round(sum(ordered) / len(ordered) / 1000, 1) if ordered else 0.0,
        "on_time_250ms": on_time,
    }


def mib(kilobytes: float) -> float:
    return round(kilobytes / 1024, 1)
