"""Partitions coming and going on the real broker: a topic grown while streams are open,
and a topic deleted and recreated under resume ids from its old incarnation."""

from __future__ import annotations

import json
import re
import time

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewPartitions, NewTopic
from aiokafka.errors import UnknownTopicOrPartitionError

from tests.integration.conftest import produce
from tests.support.kafka_log import assert_exactly, domain_events, gap_frames, read_until_count
from tests.support.processes import async_wait_until
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


@pytest.mark.kafka_oldest
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


async def topic_recreate(bootstrap: str, topic: str, partitions: int) -> None:
    admin = await admin_client(bootstrap)
    try:
        await admin.delete_topics([topic])
        deadline = time.monotonic() + 30
        while True:  # the broker answers CreateTopics with TopicAlreadyExists until the deletion is done
            [described] = await admin.describe_topics([topic])
            if described["error_code"] == UnknownTopicOrPartitionError.errno:
                break
            assert time.monotonic() < deadline, "the topic was not deleted"
        response = await admin.create_topics([NewTopic(topic, partitions, 1)])
        assert [error for _, error, *_ in response.topic_errors] == [0]
    finally:
        await admin.close()


@pytest.mark.kafka_oldest
async def test_a_resume_id_from_before_the_topic_was_recreated_gets_a_reset_gap_then_the_new_records(
    stack, kafka, topic
):
    stack.env["KAFKA_METADATA_MAX_AGE"] = "2"  # the hub looks at its topics every 2 s
    stack.consumer()
    daphne, port = stack.daphne()
    stack.wait_ready(port)
    old_stream = await connected(port)
    await produce(kafka.bootstrap, topic, values(30), partitions=[i % 3 for i in range(30)])
    await read_until_count(old_stream, 30, timeout=30)
    old_token = last_id(old_stream)  # 10 in each of partitions 0, 1, 2

    await topic_recreate(kafka.bootstrap, topic, partitions=2)
    new_records = await produce(kafka.bootstrap, topic, values(5, 30), partitions=[0, 0, 0, 1, 1])
    # The hub finds the new incarnation and sends the topic's streams away to resume.
    await old_stream.events_until(lambda _events: old_stream.ended, timeout=30)
    reconnect = old_stream.parser.events[-1].json()
    assert reconnect == {"kind": "reconnect", "reason": "resync"}
    def hub_has_new_incarnation() -> bool:
        log = daphne.log_text()
        return f"partition {topic}:2 no longer exists" in log and all(
            re.search(rf"partition {re.escape(topic)}:{p} (ends before offset 10: started over at|"
                      rf"added at offset) 0", log)
            for p in (0, 1)
        )

    await async_wait_until(hub_has_new_incarnation, timeout=30, what="the hub to see the new topic")

    resumed = await connected(port, headers={"Last-Event-ID": old_token})
    await read_until_count(resumed, 5, timeout=30)
    live_records = await produce(kafka.bootstrap, topic, values(2, 35), partitions=[0, 1])
    await read_until_count(resumed, 7, timeout=30)
    resumed.close()
    reset = {"kind": "gap", "reason": "reset", "reset": [
        {"topic": topic, "partition": 0, "requested_offset": 10, "end_offset": 3, "restart_offset": 0},
        {"topic": topic, "partition": 1, "requested_offset": 10, "end_offset": 2, "restart_offset": 0},
        {"topic": topic, "partition": 2, "requested_offset": 10, "end_offset": None, "restart_offset": None},
    ]}
    named = [e for e in resumed.parser.events if e.event == "gap"]
    plain = [e for e in resumed.parser.events if e.event is None and '"kind":"gap"' in e.data]
    assert [e.json() for e in named] == [e.json() for e in plain] == [reset]
    assert plain[0].id is not None
    events = resumed.parser.events
    assert events.index(named[0]) < events.index(plain[0]) < min(
        i for i, e in enumerate(events) if '"domain_event"' in e.data
    ), "the gap comes before any record"
    assert_exactly(domain_events(resumed), set(new_records + live_records))
