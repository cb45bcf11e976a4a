"""The messages `consume_events` sends through the channel layer to web processes.

Every web process keeps one channel in `BROADCAST_GROUP`, so each message reaches
each process once, whatever its number of clients. Records travel in batches, one
per consumer poll: partitions mixed, each partition's records in offset order. Each
record carries `prev`, the consumer's position in its partition before it, so a
receiver can tell a skipped range (records it never got) from offsets that simply
do not exist in Kafka.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from typing import Any

BROADCAST_GROUP = "crm-events.broadcast"
MESSAGE_RECORDS = "crm.records"
MESSAGE_HEARTBEAT = "crm.heartbeat"

# channels-redis keeps whole messages in Redis: bound them, whatever the record sizes.
BATCH_MAX_BYTES = 1 << 20


def records_message(items: list[dict[str, Any]]) -> dict[str, Any]:
    return {"type": MESSAGE_RECORDS, "records": items}


def record_item(event: dict[str, Any], *, prev: int, size: int) -> dict[str, Any]:
    """One record in a batch: its client payload, its predecessor position, its size."""
    return {"prev": prev, "size": size, "event": event}


def batches_split(items: Iterable[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    """Cut items into batches of at most BATCH_MAX_BYTES (a larger item travels alone)."""
    batch: list[dict[str, Any]] = []
    batch_bytes = 0
    for item in items:
        if batch and batch_bytes + item["size"] > BATCH_MAX_BYTES:
            yield batch
            batch, batch_bytes = [], 0
        batch.append(item)
        batch_bytes += item["size"]
    if batch:
        yield batch


def heartbeat_message(
    *, consumer_id: str, lag: dict[str, int], published: Iterable[tuple[str, int, int]] = ()
) -> dict[str, Any]:
    """Proof that a consumer is alive and talking to Kafka, with its lag per partition.

    `published` holds (topic, partition, next offset) for every partition the consumer has
    published up to: a receiver whose position is below that lost records on the way (Redis
    restarted, say) even when no later record comes to show the gap by its `prev`.
    """
    return {
        "type": MESSAGE_HEARTBEAT,
        "consumer": consumer_id,
        "sent_at": time.time(),
        "lag": lag,
        "published": [list(position) for position in published],
    }
