"""Exact delivery on the real stack: resume tokens, replay from Kafka, gaps, filters, bad input."""

from __future__ import annotations

import asyncio
import json
import random

import pytest
from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, RecordsToDelete

from tests.integration.conftest import produce
from tests.support.processes import http_get
from tests.support.sse_client import ResumingClient, SseConnection

PRODUCED = 2000
CUTS = 50
FRAME_BYTES = 330  # about the size of one event frame in these tests


def typed_values(count: int, start: int = 0) -> list[bytes]:
    """Alternating deal and ticket events, so a `kind=` filter keeps about half."""
    kinds = ["deal.won", "ticket.opened", "deal.stage_changed", "ticket.resolved"]
    return [
        json.dumps({"type": kinds[i % 4], "seq": i, "deal": {"stage": "won" if i % 3 else "lost"}}).encode()
        for i in range(start, start + count)
    ]


def positions_of(events: list[dict]) -> list[tuple[int, int]]:
    return [(event["partition"], event["offset"]) for event in events]


def assert_exact(received: list[dict], expected: set[tuple[int, int]]) -> None:
    """All expected events, once each, in offset order within every partition."""
    got = positions_of(received)
    assert len(got) == len(set(got)), "duplicates delivered"
    assert set(got) == expected
    for partition in {p for p, _ in got}:
        offsets = [o for p, o in got if p == partition]
        assert offsets == sorted(offsets)


async def produce_slowly(bootstrap: str, topic: str, values: list[bytes], batch: int = 40) -> list:
    """Produce in small batches with pauses, so the stream is live while clients are cut."""
    positions = []
    for start in range(0, len(values), batch):
        chunk = values[start : start + batch]
        positions += await produce(bootstrap, topic, chunk, partitions=[i % 3 for i in range(len(chunk))])
        await asyncio.sleep(0.05)
    return positions


async def cut_test(stack, kafka, topic, query: str, wanted) -> ResumingClient:
    stack.consumer()
    _, port_a = stack.daphne("daphne-a")
    _, port_b = stack.daphne("daphne-b")
    stack.wait_ready(port_a)
    stack.wait_ready(port_b)
    values = typed_values(PRODUCED)
    expected_count = sum(1 for v in values if wanted(json.loads(v)))
    # Cut points spread so that all of them fall within about half of the stream's bytes.
    rng = random.Random(2026)
    cuts = [rng.randint(1, expected_count * FRAME_BYTES // CUTS) for _ in range(CUTS)]
    client = ResumingClient([port_a, port_b], f"/crm-events{query}", cuts=cuts)

    async def production() -> list:
        # Start once the first connection is live, so every event is after its start.
        while client.last_id is None:
            await asyncio.sleep(0.01)
        return await produce_slowly(kafka.bootstrap, topic, values)

    producing = asyncio.create_task(production())
    await client.run(lambda c: len(c.received) >= expected_count, timeout=120)
    produced = await producing
    expected = {pos for pos, value in zip(produced, values, strict=True) if wanted(json.loads(value))}
    assert_exact(client.received, expected)
    assert not client.cuts, f"only {CUTS - len(client.cuts)} of {CUTS} cuts happened"
    return client


async def test_cut_fifty_times_and_resumed_on_two_web_processes_nothing_lost_or_repeated(
    stack, kafka, topic
):
    client = await cut_test(stack, kafka, topic, "", lambda value: True)
    assert client.connections == CUTS + 1


async def test_cut_test_with_a_filter_gives_exactly_the_filtered_subset(stack, kafka, topic):
    await cut_test(
        stack, kafka, topic, "?kind=deal&where=deal.stage:won",
        lambda value: value["type"].startswith("deal.") and value["deal"]["stage"] == "won",
    )


async def stream_until(port: int, path: str, count: int, headers=None, timeout: float = 30):
    connection = await SseConnection.open("127.0.0.1", port, path, headers)
    assert connection.status == 200
    await connection.events_until(
        lambda events: sum(1 for e in events if e.data and '"domain_event"' in e.data) >= count,
        timeout=timeout,
    )
    connection.close()
    return connection


def domain(connection: SseConnection) -> list[dict]:
    return [e.json() for e in connection.parser.events if e.data and '"domain_event"' in e.data]


@pytest.mark.kafka_oldest
async def test_replay_from_earliest_then_live(stack, kafka, topic):
    stack.consumer()
    _, port = stack.daphne()
    stack.wait_ready(port)
    before = await produce(kafka.bootstrap, topic, typed_values(30), partitions=[i % 3 for i in range(30)])
    connection = await SseConnection.open("127.0.0.1", port, "/crm-events?from=earliest")
    await connection.events_until(lambda e: len([x for x in e if '"domain_event"' in x.data]) >= 30, 30)
    after = await produce(kafka.bootstrap, topic, typed_values(6, 30), partitions=[0, 1, 2, 0, 1, 2])
    await connection.events_until(lambda e: len([x for x in e if '"domain_event"' in x.data]) >= 36, 30)
    connection.close()
    assert_exact(domain(connection), set(before) | set(after))


@pytest.mark.kafka_oldest
async def test_since_starts_at_the_first_event_at_or_after_the_time(stack, kafka, topic):
    stack.consumer()
    _, port = stack.daphne()
    stack.wait_ready(port)
    base = 1_780_000_000_000
    producer_values = typed_values(20)
    positions = []
    for i, value in enumerate(producer_values):
        at = base + i * 1000
        positions += await produce_at(kafka.bootstrap, topic, value, partition=i % 3, timestamp_ms=at)
    connection = await stream_until(port, f"/crm-events?since={base + 10_000}", 10)
    assert_exact(domain(connection), set(positions[10:]))
    iso = "2026-05-28T20:26:50Z"  # base + 10 s, as ISO-8601
    connection = await stream_until(port, f"/crm-events?since={iso}", 10)
    assert_exact(domain(connection), set(positions[10:]))


@pytest.mark.kafka_oldest
async def test_offset_starts_its_partitions_there_and_the_others_where_from_says(stack, kafka, topic):
    stack.consumer()
    _, port = stack.daphne()
    stack.wait_ready(port)
    # `from=latest` (the default, for partition 0) is the hub's live edge: a stream that starts
    # there and then gets all 12 got them from the hub, so the hub has passed them all.
    watcher = await SseConnection.open("127.0.0.1", port, "/crm-events")
    await watcher.events_until(lambda e: any('"connected"' in x.data for x in e), 10)
    before = await produce(kafka.bootstrap, topic, typed_values(12), partitions=[i % 3 for i in range(12)])
    await watcher.events_until(lambda e: len([x for x in e if '"domain_event"' in x.data]) >= 12, 30)
    watcher.close()
    chosen = {(1, 2), (1, 3), (2, 0), (2, 1), (2, 2), (2, 3)}  # 4 records per partition: offsets 0..3
    assert chosen < set(before)
    connection = await SseConnection.open("127.0.0.1", port, f"/crm-events?offset=1:2&offset={topic}/2:0")
    assert connection.status == 200
    await connection.events_until(lambda e: len([x for x in e if '"domain_event"' in x.data]) >= 6, 30)
    after = await produce(kafka.bootstrap, topic, typed_values(3, 12), partitions=[0, 1, 2])
    await connection.events_until(lambda e: len([x for x in e if '"domain_event"' in x.data]) >= 9, 30)
    connection.close()
    assert_exact(domain(connection), chosen | set(after))


async def produce_at(bootstrap, topic, value, *, partition, timestamp_ms):
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        meta = await producer.send_and_wait(topic, value, partition=partition, timestamp_ms=timestamp_ms)
        return [(meta.partition, meta.offset)]
    finally:
        await producer.stop()


async def test_resume_with_last_event_id_header_or_query_gets_exactly_the_rest(stack, kafka, topic):
    stack.consumer()
    _, port = stack.daphne()
    stack.wait_ready(port)
    first = await produce(kafka.bootstrap, topic, typed_values(12), partitions=[i % 3 for i in range(12)])
    connection = await stream_until(port, "/crm-events?from=earliest", 5)
    token = [e.id for e in connection.parser.events if e.data and '"domain_event"' in e.data][4]
    got_first = domain(connection)[:5]
    rest = await produce(kafka.bootstrap, topic, typed_values(6, 12), partitions=[0, 1, 2, 0, 1, 2])
    for headers, path in [({"Last-Event-ID": token}, "/crm-events"),
                          ({}, f"/crm-events?last_event_id={token}"),
                          ({"Last-Event-ID": token}, "/crm-events?from=earliest&last_event_id=junk")]:
        resumed = await stream_until(port, path, 13, headers=headers)
        assert_exact(got_first + domain(resumed), set(first) | set(rest))


@pytest.mark.kafka_oldest
async def test_a_token_older_than_retention_gets_a_gap_then_the_retained_events(stack, kafka, topic):
    stack.consumer()
    _, port = stack.daphne()
    stack.wait_ready(port)
    positions = await produce(kafka.bootstrap, topic, typed_values(20), partitions=[0] * 20)
    connection = await stream_until(port, "/crm-events?from=earliest", 6)
    token = [e.id for e in connection.parser.events if e.data and '"domain_event"' in e.data][5]
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka.bootstrap)
    await admin.start()
    try:
        await admin.delete_records({TopicPartition(topic, 0): RecordsToDelete(before_offset=15)})
    finally:
        await admin.close()

    resumed = await stream_until(port, "/crm-events", 5, headers={"Last-Event-ID": token})
    gap_named = [e for e in resumed.parser.events if e.event == "gap"]
    gap_plain = [e for e in resumed.parser.events if e.event is None and '"gap"' in e.data]
    missing = [{"topic": topic, "partition": 0, "first_offset": 6, "last_offset": 14}]
    assert [e.json() for e in gap_named] == [{"kind": "gap", "reason": "retention", "missing": missing}]
    assert [e.json() for e in gap_plain] == [{"kind": "gap", "reason": "retention", "missing": missing}]
    assert gap_plain[0].id is not None
    assert positions_of(domain(resumed)) == positions[15:]


async def test_bad_tokens_and_parameters_get_400_with_a_reason(stack, kafka, topic):
    stack.consumer()
    _, port = stack.daphne()
    stack.wait_ready(port)
    cases = {
        "/crm-events?last_event_id=%%%": ("resume token is not valid base64url", "last_event_id"),
        "/crm-events?last_event_id=AQFksZurAgAqAQeswLg": ("resume token", "last_event_id"),
        "/crm-events?colour=red": ("unknown parameter 'colour'", "colour"),
        "/crm-events?from=never": ("from must be 'latest' or 'earliest'", "from"),
        "/crm-events?topic=other": ("unknown topic 'other'", "topic"),
        "/crm-events?offset=7:0": (f"partition 7 of {topic} does not exist", "offset"),
        "/crm-events?partition=%C2%B2": ("partition must be a whole number", "partition"),
    }
    for path, (message, parameter) in cases.items():
        status, body = http_get(port, path)
        assert status == 400, (path, status, body)
        # The one error shape of the API: ok, error, code, and the parameter at fault.
        assert set(body) == {"ok", "error", "code", "parameter"}, (path, body)
        assert (body["ok"], body["code"], body["parameter"]) == (False, "bad_request", parameter), path
        assert message in body["error"], (path, body)


async def test_a_token_past_the_end_of_the_log_gets_a_reset_gap_and_restarts_at_the_log_start(
    stack, kafka, topic
):
    from crm_events.core.tokens import token_encode

    stack.consumer()
    _, port = stack.daphne()
    stack.wait_ready(port)
    first = await produce(kafka.bootstrap, topic, typed_values(3), partitions=[0, 0, 0])
    # As if the topic had been recreated since the token was issued: everything in it is new.
    future = token_encode({(topic, 0): 1000, (topic, 1): 0, (topic, 2): 0})
    connection = await SseConnection.open("127.0.0.1", port, "/crm-events", {"Last-Event-ID": future})
    await connection.events_until(lambda e: len(domain(connection)) >= 3, timeout=20)
    later = await produce(kafka.bootstrap, topic, typed_values(1), partitions=[0])
    await connection.events_until(lambda e: len(domain(connection)) >= 4, timeout=20)
    connection.close()
    reset = {"kind": "gap", "reason": "reset", "reset": [
        {"topic": topic, "partition": 0, "requested_offset": 1000, "end_offset": 3, "restart_offset": 0},
    ]}
    assert [e.json() for e in connection.parser.events if e.event == "gap"] == [reset]
    assert [e.json() for e in connection.parser.events if e.event is None and '"gap"' in e.data] == [reset]
    assert positions_of(domain(connection)) == first + later == [(0, 0), (0, 1), (0, 2), (0, 3)]
