"""What the live viewer's partitions panel shows: per partition, where this web process stands
and how far the consumer is behind, from what the process already knows.

No Kafka round trip per poll: the offsets are the hub's own positions (the offset after the
last record it passed on, or Kafka's end offset when it started) and the lag is what the
consumers' heartbeats last said, dropped once older than the readiness limit, as `/metrics`
does. A partition that two consumers report (during a rebalance, until the old one's last
heartbeat expires) shows the larger lag: the panel should rather worry than reassure.
"""

from __future__ import annotations

from typing import Any

from crm_events.core.positions import Position
from crm_events.fanout.hub import EventHub


def lag_key_parse(key: str) -> Position | None:
    """`topic:partition` as the consumer writes it; None for anything else (a foreign sender)."""
    topic, colon, partition = key.rpartition(":")
    if not colon or not topic or not partition.isascii() or not partition.isdigit():
        return None
    return topic, int(partition)


def lag_by_position(lags: dict[str, dict[str, int]]) -> dict[Position, tuple[int, str]]:
    """`{consumer: {"topic:partition": lag}}` -> the largest lag per partition and who reported it."""
    merged: dict[Position, tuple[int, str]] = {}
    for consumer, partitions in sorted(lags.items()):
        for key, lag in partitions.items():
            position = lag_key_parse(key)
            if position is not None and lag >= merged.get(position, (-1, ""))[0]:
                merged[position] = (lag, consumer)
    return merged


def partition_row(position: Position, next_offset: int, lag: tuple[int, str] | None) -> dict[str, Any]:
    topic, partition = position
    return {
        "topic": topic,
        "partition": partition,
        "next_offset": next_offset,
        "last_offset": next_offset - 1 if next_offset > 0 else None,  # None: the partition is empty
        "lag": None if lag is None else lag[0],
        "consumer": None if lag is None else lag[1],
    }


def partitions_report(hub: EventHub, *, heartbeat_max_age: float) -> dict[str, Any]:
    """The panel's JSON: `positioned` is false until the hub has read Kafka's end offsets."""
    lags = lag_by_position(hub.consumer_lag_current(heartbeat_max_age))
    age = hub.heartbeat_age()
    return {
        "ok": True,
        "positioned": hub.positions_ready.is_set(),
        "heartbeat_age": None if age is None else round(age, 1),
        "heartbeat_max_age": heartbeat_max_age,
        "partitions": [
            partition_row(position, offset, lags.get(position))
            for position, offset in sorted(hub.positions.items())
        ],
    }
