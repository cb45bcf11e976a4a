"""Fault tolerance: an upstream outage (the consumer stopped, Kafka stopped) leaves every web
process ready. `/readyz` stays 200 all along, `/status` says what is down, open streams keep
their heartbeats, and the events produced while the consumer was away (or after Kafka came
back) reach them once it is back: exactly once, in order per partition."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest

from scripts.servers import KafkaServer, free_port
from tests.integration.conftest import Stack, json_values, produce, started, topic_create
from tests.support.processes import async_wait_until, http_get
from tests.support.sse_client import SseConnection

pytestmark = pytest.mark.faults

BEFORE, DURING = 30, 30
HEARTBEAT = "0.5"
OUTAGE_HEARTBEATS = 4  # seen on every stream while the upstream is down


def seq_events(connection: SseConnection) -> list[tuple[int, int, int]]:
    """(partition, offset, seq) of each domain event the stream got, in arrival order."""
    found = []
    for event in connection.parser.events:
        payload = json.loads(event.data) if event.data.startswith("{") else {}
        if payload.get("kind") == "domain_event":
            found.append((payload["partition"], payload["offset"], payload["value"]["seq"]))
    return found


def exactly(connection: SseConnection, produced: list[tuple[int, int]]) -> None:
    """Every produced record once; per partition in offset order."""
    got = seq_events(connection)
    assert sorted((p, o) for p, o, _ in got) == sorted(produced), "lost or duplicated"
    for partition in {p for p, _ in produced}:
        offsets = [o for p, o, _ in got if p == partition]
        assert offsets == sorted(offsets), f"out of order on partition {partition}"


def heartbeats(connection: SseConnection) -> int:
    return connection.parser.comments.count("heartbeat")


async def ready_throughout(ports: list[int], seconds: float) -> None:
    """/readyz is 200 on every port at every look for `seconds` (longer than READY_HEARTBEAT_MAX_AGE)."""
    until = time.monotonic() + seconds
    while time.monotonic() < until:
        for port in ports:
            status, body = await asyncio.to_thread(http_get, port, "/readyz")
            assert status == 200, body
        await asyncio.sleep(0.2)


async def status_says(port: int, check: str, prefix: str) -> dict:
    answers: list[tuple[int, dict]] = []

    def says() -> bool:
        answers.append(http_get(port, "/status"))
        status, body = answers[-1]
        return status == 503 and body["ready"] is True and body["checks"][check].startswith(prefix)

    await async_wait_until(says, timeout=30, what=f"/status to say {check}: {prefix}...")
    return answers[-1][1]


async def streams_through_outage(
    ports, bootstrap, topic, down, up, check, prefix, *, produce_while_down=True
):
    """Streams on every port; records before `down()`, and while down (or after `up()` when the
    outage is Kafka's own); the verdict."""
    connections = [await SseConnection.open("127.0.0.1", port, "/crm-events") for port in ports]
    produced = await produce(bootstrap, topic, json_values(BEFORE))
    for connection in connections:
        await connection.events_until(lambda _, c=connection: len(seq_events(c)) >= BEFORE, timeout=30)
    await down()
    body = await status_says(ports[0], check, prefix)
    assert body["checks"]["hub"] == "ok"
    counted = [heartbeats(connection) for connection in connections]
    await ready_throughout(ports, 5.0)
    for connection, before in zip(connections, counted, strict=True):
        await connection.events_until(
            lambda _, c=connection, b=before: heartbeats(c) >= b + OUTAGE_HEARTBEATS, timeout=15)
        assert heartbeats(connection) >= before + OUTAGE_HEARTBEATS and not connection.ended
    later = [json.dumps({"type": "deal.updated", "seq": BEFORE + i}).encode() for i in range(DURING)]
    if produce_while_down:
        produced += await produce(bootstrap, topic, later)
        await up()
    else:
        await up()
        produced += await produce(bootstrap, topic, later)
    for connection in connections:
        await connection.events_until(lambda _, c=connection: len(seq_events(c)) >= len(produced), timeout=90)
        exactly(connection, produced)
        connection.close()


async def test_the_consumer_stopped_and_started_again(stack, kafka, topic):
    stack.env["SSE_HEARTBEAT_INTERVAL"] = HEARTBEAT
    consumer = stack.consumer()
    ports = [stack.daphne(f"daphne-{name}")[1] for name in "ab"]
    for port in ports:
        stack.wait_ready(port)
    restarted: list = []

    async def down() -> None:
        await asyncio.to_thread(consumer.stop)

    async def up() -> None:
        restarted.append(stack.consumer("consumer-again"))

    await streams_through_outage(ports, kafka.bootstrap, topic, down, up, "consumer",
                                 "last heartbeat from consume_events was")
    assert restarted[0].is_running()


async def test_kafka_stopped_and_started_again(env, tmp_path: Path):
    broker = started(lambda n: KafkaServer(port=free_port(), controller_port=free_port(),
                                           data_dir=tmp_path / f"kafka{n}"))
    stack = Stack({**env, "KAFKA_BROKERS": broker.bootstrap, "SSE_HEARTBEAT_INTERVAL": HEARTBEAT}, tmp_path)
    try:
        await topic_create(broker.bootstrap, env["KAFKA_TOPIC"])
        stack.consumer()
        ports = [stack.daphne(f"daphne-{name}")[1] for name in "ab"]
        for port in ports:
            stack.wait_ready(port)

        async def down() -> None:
            await asyncio.to_thread(broker.stop)

        async def up() -> None:
            await asyncio.to_thread(broker.start)
            for port in ports:
                await asyncio.to_thread(stack.wait_ready, port, 90)

        await streams_through_outage(ports, broker.bootstrap, env["KAFKA_TOPIC"], down, up, "kafka",
                                     "kafka unreachable: ", produce_while_down=False)
        assert all(process.is_running() for process in stack.processes)
    finally:
        stack.stop_all()
        broker.stop()
