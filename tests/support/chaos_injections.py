"""What the chaos run injects: hostile records into the topic, foreign messages into the layer.

Hostile records are the classes of `record_contract` that lenient decoders get wrong; each must
reach every client whose filter wants it exactly once, as a strict-JSON `domain_event` frame.
Foreign messages are what another version of us, or anything else with the Redis password,
could put into the broadcast group; after each, events produced later must still reach every
client. Both retry through an outage of Kafka or Redis (faults may overlap) until a deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import time
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from channels_redis.core import RedisChannelLayer
from django.conf import settings
from redis.exceptions import RedisError

BROADCAST_GROUP = "crm-events.broadcast"  # crm_events/broadcast.py, spelled out: a contract
INJECT_DEADLINE = 60.0


@dataclass(frozen=True)
class Hostile:
    value: bytes | None
    key: bytes | None = None  # None: the run picks one of the production's keys, or none
    headers: tuple[tuple[str, bytes], ...] = ()


_PLAIN = b'{"type":"deal.won","chaos":"odd key or header","deal":{"stage":"won"}}'

HOSTILE_RECORDS: dict[str, Hostile] = {
    "lone-surrogate": Hostile(rb'{"type":"deal.won","note":"\ud800"}'),
    "nan": Hostile(b'{"type":"deal.won","amount":NaN}'),
    "float-overflow": Hostile(b'{"type":"deal.won","n":1e400}'),
    "int-beyond-64-bits": Hostile(b'{"type":"deal.won","n":123456789012345678901234567890}'),
    "duplicate-key": Hostile(b'{"type":"deal.won","a":1,"a":2}'),
    "nested-150": Hostile(b"[" * 150 + b"]" * 150),
    "not-utf8": Hostile(b'{"type":"deal.won","name":"\xff\xfe\xc3\x28"}'),
    "binary-key": Hostile(_PLAIN, key=b"\xff\x00\xfechaos-key"),
    "binary-header": Hostile(_PLAIN, headers=(("chaos-bin", b"\xff\x00\xfe"), ("event-type", b"deal.won"))),
}


async def record_inject(
    bootstrap: str, topic: str, hostile: Hostile, *, partition: int, key: bytes | None
) -> tuple[int, int]:
    """Produce one hostile record (retrying while Kafka is away); its (partition, offset)."""
    deadline = time.monotonic() + INJECT_DEADLINE
    while True:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", request_timeout_ms=5000)
        try:
            await asyncio.wait_for(producer.start(), 10)
            metadata = await asyncio.wait_for(
                await producer.send(
                    topic, hostile.value, key=hostile.key or key, partition=partition,
                    headers=list(hostile.headers),
                ),
                15,
            )
            return metadata.partition, metadata.offset
        except (KafkaError, OSError, TimeoutError):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)
        finally:
            with contextlib.suppress(KafkaError, OSError, TimeoutError):
                await asyncio.wait_for(producer.stop(), 10)


def _event(topic: Any, partition: Any, offset: Any) -> dict[str, Any]:
    return {
        "kind": "domain_event", "topic": topic, "partition": partition, "offset": offset,
        "timestamp": 1, "key": None, "headers": {}, "type": "deal.won",
        "value": {"type": "deal.won", "forged": True}, "value_format": "json",
    }


def _records(*items: Any) -> dict[str, Any]:
    return {"type": "crm.records", "records": list(items)}


def foreign_messages(topic: str) -> dict[str, dict[str, Any]]:
    """Every class of foreign layer message, for a service serving `topic`."""
    return {
        "unknown-type": {"type": "crm.unknown", "records": []},
        "records-missing": {"type": "crm.records"},
        "records-not-a-list": {"type": "crm.records", "records": "not a list"},
        "records-a-dict": {"type": "crm.records", "records": {"event": _event(topic, 0, 0)}},
        "item-not-a-dict": _records(42),
        "item-missing-fields": _records({"prev": 0}),
        "event-missing-fields": _records({"prev": 0, "size": 1, "event": {"kind": "domain_event"}}),
        "offset-a-string": _records({"prev": 0, "size": 1, "event": _event(topic, 0, "12")}),
        "partition-a-string": _records({"prev": 0, "size": 1, "event": _event(topic, "1", 0)}),
        "prev-a-string": _records({"prev": "0", "size": 1, "event": _event(topic, 0, 0)}),
        "topic-not-served": _records({"prev": 0, "size": 1, "event": _event("not.served.topic", 0, 0)}),
        "partition-negative": _records({"prev": 0, "size": 1, "event": _event(topic, -1, 0)}),
        "future-version": {"type": "crm.records", "v": 99,
                           "records": [{"v": 99, "events": ["opaque"], "checksum": "x"}]},
        "heartbeat-missing-fields": {"type": "crm.heartbeat"},
        "heartbeat-garbage": {"type": "crm.heartbeat", "consumer": ["x"], "sent_at": "yesterday",
                              "lag": "lots", "published": "everything"},
        "heartbeat-garbage-published": {"type": "crm.heartbeat", "consumer": "forged", "lag": {},
                                        "sent_at": 0, "published": [[topic], [topic, "0", None], [None] * 4]},
    }


def layer_like_service(redis_url: str, prefix: str) -> RedisChannelLayer:
    """A layer configured as the service's (aetherlink/settings.py CHANNEL_LAYERS), on this run's
    Redis and prefix."""
    config = copy.deepcopy(settings.CHANNEL_LAYERS["default"]["CONFIG"])
    config["hosts"][0]["address"] = redis_url
    config["prefix"] = prefix
    return RedisChannelLayer(**config)


async def message_inject(redis_url: str, prefix: str, message: dict[str, Any]) -> None:
    """`group_send` one foreign message to the broadcast group (retrying while Redis is away)."""
    deadline = time.monotonic() + INJECT_DEADLINE
    layer = layer_like_service(redis_url, prefix)
    try:
        while True:
            try:
                await asyncio.wait_for(layer.group_send(BROADCAST_GROUP, copy.deepcopy(message)), 10)
                return
            except (RedisError, OSError, TimeoutError):
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.5)
    finally:
        await layer.close_pools()
