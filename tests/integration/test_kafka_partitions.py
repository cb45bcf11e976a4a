"""Partitions coming and going on the real broker: a topic grown while streams are open."""

from __future__ import annotations

import json
import time

from aiokafka.admin import AIOKafkaAdminClient, NewPartitions

from tests.integration.conftest import produce
from tests.support.kafka_log import assert_exactly, domain_events, gap_frames, read_until_count
from tests.support.sse_client import SseConnection

GROWN_TO = 5
NEW_PARTITIONS_WITHIN = 60.0  # seconds, with the default KAFKA_METADATA_MAX_AGE (30)


def values(count: int, start: int = 0) -> list[bytes]:
    return [json.dumps({"type": "deal.won", "seq": i}).encode() for i in range(start, start + count)]


def last_id(connection: SseConnection) -> str:
    return [e.id for e in connection.parser.events if e.event is None and '"domain_event"' in e.data][-1]


async def connected(port: int, path: str = "/crm-events", headers: dict | None = None) -> SseConnection:
    connection = await SseConnection.open("127.0.0.1", port, path, headers)
    assert connection.status == 200
    await connection.events_until(lambda events: any('"connected"' in e.data for e in events), timeout=10)
    return connection


async def admin_client(bootstrap: str) -> AIOKafkaAdminClient:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    return admin


async def test_partitions_added_while_streams_are_open_reach_open_new_and_resumed_streams(
    stack, kafka, topic
):
    assert "KAFKA_METADATA_MAX_AGE" not in stack.env, "this test proves the default period"
    stack.consumer()
    daphne, port = stack.daphne()
    stack.wait_ready(port)
    before_growth = await connected(port)
    first = await produce(kafka.bootstrap, topic, values(3), partitions=[0, 1, 2])
    await read_until_count(before_growth, 3, timeout=30)
    token_before = last_id(before_growth)

    admin = await admin_client(kafka.bootstrap)
    try:
        await admin.create_partitions({topic: NewPartitions(total_count=GROWN_TO)})
    finally:
        await admin.close()
    grown_at = time.monotonic()
    after_growth = await connected(port)  # opened before the service could have seen the new partitions
    added = await produce(kafka.bootstrap, topic, values(6, 3), partitions=[3, 4, 3, 4, 0, 1])
    assert {p for p, _ in added} == {0, 1, 3, 4}

    deadline = NEW_PARTITIONS_WITHIN - (time.monotonic() - grown_at)
    await read_until_count(before_growth, 3 + 6, timeout=deadline)
    await read_until_count(after_growth, 6, timeout=NEW_PARTITIONS_WITHIN - (time.monotonic() - grown_at))
    took = time.monotonic() - grown_at
    assert took < NEW_PARTITIONS_WITHIN

    resumed = await connected(port, headers={"Last-Event-ID": token_before})
    await read_until_count(resumed, 6, timeout=30)
    later = await connected(port)
    more = await produce(kafka.bootstrap, topic, values(5, 9), partitions=[0, 1, 2, 3, 4])
    for connection, count in [(before_growth, 14), (after_growth, 11), (resumed, 11), (later, 5)]:
        await read_until_count(connection, count, timeout=30)
    for connection, expected in [
        (before_growth, first + added + more), (after_growth, added + more), (resumed, added + more),
        (later, more),
    ]:
        connection.close()
        assert_exactly(domain_events(connection), set(expected))
        assert gap_frames(connection) == []
        assert not connection.ended
    log = daphne.log_text()
    for partition in (3, 4):
        assert f"partition {topic}:{partition} added at offset 0" in log
    assert "live path lost" not in log
    print(f"records in the new partitions reached the open streams {took:.1f}s after create_partitions")
