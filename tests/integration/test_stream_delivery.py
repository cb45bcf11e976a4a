"""Kafka -> consume_events -> Redis layer -> Daphne -> SSE client, all real, over sockets."""

from __future__ import annotations

import base64
import json

import pytest

from tests.integration.conftest import json_values, produce
from tests.support.sse_client import SseConnection

EVENTS = 300


def domain_events(events):
    payloads = [e.json() for e in events if e.data]
    return [p for p in payloads if p.get("kind") == "domain_event"]


async def connected_stream(port: int) -> SseConnection:
    connection = await SseConnection.open("127.0.0.1", port, "/crm-events")
    assert connection.status == 200
    await connection.events_until(lambda events: len(events) >= 2, timeout=10)
    return connection


@pytest.mark.kafka_oldest
async def test_every_event_arrives_once_in_partition_order_with_the_old_frame_shape(
    stack, kafka, topic
):
    stack.consumer()
    _, port = stack.daphne()
    stack.wait_ready(port)
    connection = await connected_stream(port)
    assert connection.headers["content-type"] == "text/event-stream"
    assert connection.headers["cache-control"] == "no-cache"
    assert connection.headers["x-accel-buffering"] == "no"
    retry, connected = connection.parser.events[:2]
    assert 2400 <= retry.retry <= 3600  # SSE_RETRY_MS 3000 with 20% jitter
    assert connected.json() == {
        "kind": "connected", "topic": topic, "topics": [topic], "group": stack.env["KAFKA_GROUP"],
    }

    values = json_values(EVENTS)
    positions = await produce(
        kafka.bootstrap, topic, values, partitions=[i % 3 for i in range(EVENTS)],
        keys=[f"deal-{i}".encode() for i in range(EVENTS)],
        headers=[[("source", b"test")]] * EVENTS,
    )
    events = await connection.events_until(lambda e: len(domain_events(e)) >= EVENTS, timeout=60)
    received = domain_events(events)
    connection.close()

    assert len(received) == EVENTS
    assert sorted((e["partition"], e["offset"]) for e in received) == sorted(positions)
    for partition in range(3):
        offsets = [e["offset"] for e in received if e["partition"] == partition]
        assert offsets == sorted(offsets) and len(offsets) == EVENTS // 3
    by_seq = {e["value"]["seq"]: e for e in received}
    first = by_seq[0]
    assert set(first) == {
        "kind", "topic", "partition", "offset", "timestamp", "key", "headers", "type", "value",
        "value_format",
    }
    assert (first["topic"], first["key"], first["headers"], first["value_format"]) == (
        topic, "deal-0", {"source": "test"}, "json",
    )
    assert first["value"] == {"type": "deal.updated", "seq": 0}
    expected_frame = b"data: " + json.dumps(first, separators=(",", ":")).encode() + b"\n\n"
    assert expected_frame in connection.raw_body


async def test_bad_records_are_delivered_marked_and_the_consumer_keeps_going(stack, kafka, topic):
    consumer = stack.consumer()
    _, port = stack.daphne()
    stack.wait_ready(port)
    connection = await connected_stream(port)
    bad = [b"not json {", b"", b"\xff\xfe\xfd", None, b'{"type":"deal.won","after":"bad"}']
    # A tombstone (None value) needs a key; the others have none.
    keys = [None, None, None, b"deal-7", None]
    await produce(kafka.bootstrap, topic, bad, partitions=[0] * len(bad), keys=keys)

    events = await connection.events_until(lambda e: len(domain_events(e)) >= len(bad), timeout=30)
    received = domain_events(events)
    connection.close()

    assert [(e["value"], e["value_format"]) for e in received] == [
        ("not json {", "text"),
        (None, "empty"),
        (base64.b64encode(b"\xff\xfe\xfd").decode(), "base64"),
        (None, "empty"),
        ({"type": "deal.won", "after": "bad"}, "json"),
    ]
    assert consumer.is_running()


@pytest.mark.kafka_oldest
async def test_consumer_stops_cleanly_on_sigterm_with_everything_published_committed(stack, kafka, topic):
    consumer = stack.consumer()
    _, port = stack.daphne()
    stack.wait_ready(port)
    connection = await connected_stream(port)
    positions = await produce(kafka.bootstrap, topic, json_values(30), partitions=[i % 3 for i in range(30)])
    await connection.events_until(lambda e: len(domain_events(e)) >= 30, timeout=30)
    connection.close()

    assert consumer.stop() == 0
    assert "stopped" in consumer.log_text()
    committed = await committed_offsets(kafka.bootstrap, stack.env["KAFKA_GROUP"])
    ends = {}
    for partition, offset in positions:
        ends[partition] = max(ends.get(partition, 0), offset + 1)
    assert committed == {(topic, p): o for p, o in ends.items()}


async def committed_offsets(bootstrap: str, group: str) -> dict:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(group)
    finally:
        await admin.close()
    return {(tp.topic, tp.partition): meta.offset for tp, meta in offsets.items()}
