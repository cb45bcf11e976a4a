"""Fault tolerance: a Redis with little room (`maxmemory`, `noeviction`) refuses what it cannot hold.

A 4.5 MB record cannot be carried by the channel layer there: it travels by reference and each
web process reads it from Kafka, so it and the 50 small records after it (three partitions)
reach the client intact, exactly once, in order per partition. Then another client fills
Redis until it refuses every write: publishing stalls, `/status` says why (`/readyz` stays 200),
and once the room comes back everything produced meanwhile arrives too.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from scripts.servers import KafkaServer, RedisServer, free_port
from tests.integration.conftest import Stack, produce, started, topic_create
from tests.support.processes import http_get, service_env, wait_until
from tests.support.prometheus import metric_value, metrics_text
from tests.support.sse_client import SseConnection

pytestmark = pytest.mark.faults

# Room for the layer's small messages, none for a 4.5 MB one (Redis counts a command's
# arguments in its memory before running it).
MAXMEMORY = 3 * 1024 * 1024
BIG = 4_500_000
SMALL = 50
MORE = 20  # produced while Redis is full
FILLER_VALUE = b"x" * (256 * 1024)  # large steps: the last one accepted leaves no room at all


@pytest.fixture
def tight_redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = started(
        lambda n: RedisServer(port=free_port(), data_dir=tmp_path / f"redis{n}", maxmemory=MAXMEMORY)
    )
    yield server
    server.stop()


def domain_events(connection: SseConnection) -> list[dict]:
    return [event.json() for event in connection.parser.events if '"domain_event"' in event.data]


def status_of(port: int) -> tuple[int, dict]:
    return http_get(port, "/status")


def status_until(port: int, done: Callable[[int, dict], bool], timeout: float = 30) -> tuple[int, dict]:
    """/status's answer once `done(status, body)`; the failure names the last answer."""
    answers = [status_of(port)]
    try:
        wait_until(lambda: done(*answers[-1]) or answers.append(status_of(port)), timeout=timeout,
                   what="/status")
    except AssertionError as error:
        raise AssertionError(f"{error}; the last answer: {answers[-1]}") from None
    return answers[-1]


def consumer_metric(port: int, name: str, **labels: str) -> float:
    return metric_value(metrics_text(port), name, **labels)


def redis_fill(url: str) -> int:
    """Write big values until Redis refuses one for memory; the number written. Redis frees
    the buffers of a refused write and of a closed connection, which leaves room for small
    writes again: the room is taken away too (maxmemory well under what Redis holds), so
    every write is refused until `redis_empty`."""
    client = redis.Redis.from_url(url)
    written = 0
    try:
        while True:
            try:
                client.set(f"filler:{written}", FILLER_VALUE)
            except redis.exceptions.OutOfMemoryError:
                break
            written += 1
        client.config_set("maxmemory", client.info("memory")["used_memory"] // 2)
        return written
    finally:
        client.close()


def redis_empty(url: str, written: int) -> None:
    client = redis.Redis.from_url(url)
    try:
        client.delete(*(f"filler:{i}" for i in range(written)))
        client.config_set("maxmemory", MAXMEMORY)
    finally:
        client.close()


def assert_exact(received: list[dict], produced: list[tuple[int, int]], values: list[bytes]) -> None:
    """Each produced record exactly once, intact, in offset order per partition."""
    assert len(received) == len(produced)
    assert sorted((e["partition"], e["offset"]) for e in received) == sorted(produced)
    by_position = {(e["partition"], e["offset"]): e for e in received}
    for position, value in zip(produced, values, strict=True):
        event = by_position[position]
        assert event["value_format"] == "json" and event["value"] == json.loads(value), position
    for partition in range(3):
        offsets = [e["offset"] for e in received if e["partition"] == partition]
        assert offsets == sorted(offsets), partition


async def test_a_record_redis_cannot_hold_travels_by_reference_and_a_full_redis_stalls_visibly(
    kafka: KafkaServer, tight_redis: RedisServer, tmp_path: Path
):
    topic = f"crm-test-refusal-{free_port()}"
    await topic_create(kafka.bootstrap, topic, configs={"max.message.bytes": str(2 * BIG)})
    consumer_port = free_port()
    stack = Stack(service_env(
        KAFKA_BROKERS=kafka.bootstrap, KAFKA_TOPIC=topic, KAFKA_GROUP=f"group-{topic}",
        REDIS_URL=tight_redis.url, REDIS_PREFIX=f"test-{topic}", CONSUMER_PUBLISH_STALL_SECONDS="1",
        CONSUMER_METRICS_PORT=str(consumer_port),
    ), tmp_path)
    try:
        consumer = stack.consumer()
        _, port = stack.daphne()
        stack.wait_ready(port)
        connection = await SseConnection.open("127.0.0.1", port, "/crm-events")
        assert connection.status == 200

        # The big record first, on partition 0; the small ones after it on every partition.
        big = json.dumps({"type": "deal.attachment", "blob": "b" * BIG}).encode()
        values = [big, *(json.dumps({"type": "deal.updated", "seq": i}).encode() for i in range(SMALL))]
        produced = await produce(
            kafka.bootstrap, topic, values, partitions=[0, *(i % 3 for i in range(SMALL))],
            max_request_size=2 * BIG,
        )
        await connection.events_until(lambda _: len(domain_events(connection)) >= len(values), timeout=90)
        assert_exact(domain_events(connection), produced, values)
        assert "published by reference" in consumer.log_text()
        assert consumer_metric(consumer_port, "aetherlink_records_by_reference_total", topic=topic) == 1

        # Another client fills Redis: every write is refused, small ones and heartbeats too.
        written = await asyncio.to_thread(redis_fill, tight_redis.url)
        more = [json.dumps({"type": "deal.updated", "seq": SMALL + i}).encode() for i in range(MORE)]
        produced += await produce(kafka.bootstrap, topic, more, partitions=[i % 3 for i in range(MORE)])
        values += more
        status, body = await asyncio.to_thread(
            status_until, port, lambda status, body: status == 503 and body["checks"]["redis"] != "ok",
        )
        assert body["checks"]["redis"] == (
            "redis refuses writes: OutOfMemoryError: command not allowed when used memory > 'maxmemory'."
        )
        assert body["ready"] is True and http_get(port, "/readyz")[0] == 200
        await asyncio.to_thread(
            wait_until,
            lambda: consumer_metric(consumer_port, "aetherlink_consumer_publishing_stalled_seconds") > 1,
            timeout=30, what="the consumer's stall past CONSUMER_PUBLISH_STALL_SECONDS",
        )
        assert "publishing stalled for" in consumer.log_text()
        assert len(domain_events(connection)) == len(produced) - MORE, "nothing passes a full Redis"

        # Room again: everything produced meanwhile arrives, and /status is 200.
        await asyncio.to_thread(redis_empty, tight_redis.url, written)
        await connection.events_until(lambda _: len(domain_events(connection)) >= len(values), timeout=60)
        assert_exact(domain_events(connection), produced, values)
        stack.wait_ready(port, timeout=30)
        assert "publishing resumed after a stall" in consumer.log_text()
        connection.close()
        assert consumer.is_running(), consumer.log_text()[-3000:]
    finally:
        stack.stop_all()
