"""Fault tolerance: layer messages no web process planned for, injected straight into the broadcast group.

What a consumer of another version, a stray publisher or a garbled write could put there:
unknown types, records missing or with wrong field types, topics not served, a future
version, garbage heartbeats, and bytes that are not even msgpack (the layer fails to
receive them). Every web process must go on: events produced afterwards reach a stream
that was open all along and a new one, the skipped messages are counted by reason, the
receive failure restarted the hub's loop (counted), and `/readyz` is 200 again.
"""

from __future__ import annotations

import json
import re

import pytest
import redis.asyncio as redis_async
from channels_redis.core import RedisChannelLayer

from crm_events.core import messages as broadcast
from tests.integration.conftest import produce
from tests.support.processes import async_wait_until, http_get
from tests.support.sse_client import SseConnection

pytestmark = pytest.mark.faults


def item(topic: str, **event_changes) -> dict:
    event = {"kind": "domain_event", "topic": topic, "partition": 0, "offset": 0, "timestamp": 0,
             "key": None, "headers": {}, "type": "deal.won", "value": {}, "value_format": "json",
             **event_changes}
    return {"prev": 0, "size": 1, "event": event}


def foreign_messages(topic: str) -> list[tuple[str, dict]]:
    """(the reason the hub must count, the message): one skipped message or record each."""
    records = broadcast.MESSAGE_RECORDS
    return [
        ("unknown_type", {"type": "chat.message", "text": "hello"}),
        ("malformed", {"type": records}),
        ("malformed", {"type": records, "records": "not a list"}),
        ("malformed", {"type": records, "v": "one", "records": []}),
        ("too_new", {"type": records, "v": broadcast.MESSAGE_VERSION + 1, "records": [item(topic)]}),
        ("record_malformed", {"type": records, "records": [{"prev": "x"}]}),
        ("record_malformed", {"type": records, "records": [7]}),
        ("record_malformed", {"type": records, "records": [item(topic, offset="12")]}),
        ("record_malformed", {"type": records, "records": [item(topic, partition=-1)]}),
        ("record_malformed", {"type": records, "records": [item(topic, type=["deal.won"])]}),
        ("record_malformed", {"type": records, "records": [item(topic, value_format=["json"])]}),
        ("record_topic_not_served", {"type": records, "records": [item("someone.elses.topic")]}),
        ("record_unencodable", {"type": records, "records": [item(topic, value=float("nan"))]}),
        ("malformed", {"type": broadcast.MESSAGE_HEARTBEAT, "consumer": 5, "lag": "x",
                       "published": [[1, 2]]}),
        ("malformed", {"type": broadcast.MESSAGE_HEARTBEAT, "consumer": "c", "lag": {},
                       "published": [["t", "0", 1]]}),
    ]


def metric(port: int, name: str, **labels: str) -> float:
    text = http_get(port, "/metrics")[1].decode()
    label_text = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    match = re.search(rf"^{name}(?:\{{{re.escape(label_text)}\}})? (\S+)$", text, re.M)
    return float(match.group(1)) if match else 0.0


def domain(connection: SseConnection) -> list[dict]:
    return [e.json() for e in connection.parser.events if e.data and '"domain_event"' in e.data]


async def garbage_into_hub_channel(env: dict[str, str], layer: RedisChannelLayer) -> None:
    """Bytes that are not msgpack, written where the hubs receive from: their receive fails."""
    client = redis_async.from_url(env["REDIS_URL"])
    try:
        members = await client.zrange(layer._group_key(broadcast.BROADCAST_GROUP), 0, -1)
        for channel in members:
            key = layer.prefix + layer.non_local_name(channel.decode())
            await client.zadd(key, {b"\xc1 not msgpack": 0})
    finally:
        await client.aclose()


async def test_foreign_layer_messages_are_skipped_counted_and_never_stop_delivery(stack, kafka, topic):
    stack.consumer()
    _, port = stack.daphne()
    stack.wait_ready(port)
    before = await SseConnection.open("127.0.0.1", port, "/crm-events")
    await before.events_until(lambda events: any('"connected"' in (e.data or "") for e in events), timeout=10)
    layer = RedisChannelLayer(hosts=[stack.env["REDIS_URL"]], prefix=stack.env["REDIS_PREFIX"])
    messages = foreign_messages(topic)
    counted = {reason: metric(port, "aetherlink_hub_foreign_messages_total", reason=reason)
               for reason, _ in messages}
    restarts = metric(port, "aetherlink_hub_restarts_total")
    for _, message in messages:
        await layer.group_send(broadcast.BROADCAST_GROUP, message)
    await garbage_into_hub_channel(stack.env, layer)
    await async_wait_until(lambda: metric(port, "aetherlink_hub_restarts_total") > restarts,
                           timeout=20, what="the receive failure to restart the hub's loop")

    values = [json.dumps({"type": "deal.won", "seq": i}).encode() for i in range(6)]
    await produce(kafka.bootstrap, topic, values, partitions=[i % 3 for i in range(6)])
    after = await SseConnection.open("127.0.0.1", port, "/crm-events?from=earliest")
    for connection in (before, after):
        await connection.events_until(lambda _, c=connection: len(domain(c)) >= 6, timeout=30)
    assert sorted(e["value"]["seq"] for e in domain(before)) == list(range(6))
    assert sorted(e["value"]["seq"] for e in domain(after)) == list(range(6))
    owed: dict[str, int] = {}
    for reason, _ in messages:
        owed[reason] = owed.get(reason, 0) + 1
    seen = {reason: metric(port, "aetherlink_hub_foreign_messages_total", reason=reason) - counted[reason]
            for reason in owed}
    assert seen == owed
    await async_wait_until(lambda: http_get(port, "/readyz")[0] == 200, timeout=20, what="/readyz 200")
    before.close()
    after.close()
