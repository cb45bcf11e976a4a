"""How streams begin and end on a real Daphne: heartbeats, slow clients, lifetime, SIGTERM, cleanup."""

from __future__ import annotations

import asyncio
import json
import signal

import pytest

from tests.integration.conftest import PARTITIONS, json_values, produce
from tests.support.processes import async_wait_until, http_get, wait_until
from tests.support.resume_ids import id_positions
from tests.support.sse_client import ResumingClient, SseConnection


def domain(events) -> list[dict]:
    return [e.json() for e in events if e.data and e.event is None and '"domain_event"' in e.data]


def farewell(events):
    last = events[-1]
    assert last.id, "the last frame must carry a resume id"
    payload = last.json()
    assert payload["kind"] == "reconnect", payload
    return payload["reason"], last.id


def streams(port: int) -> int:
    return http_get(port, "/readyz")[1]["streams"]


async def ready_stack(stack, **env: str) -> int:
    stack.env.update(env)
    stack.consumer()
    _, port = stack.daphne()
    stack.wait_ready(port)
    return port


async def test_idle_streams_get_heartbeats_with_a_fresh_id(stack):
    port = await ready_stack(stack, SSE_HEARTBEAT_INTERVAL="0.3")
    connection = await SseConnection.open("127.0.0.1", port, "/crm-events")
    await connection.events_until(lambda e: len(connection.parser.comments) >= 2, timeout=10)
    connection.close()
    assert connection.parser.comments[:2] == ["heartbeat", "heartbeat"]
    assert connection.parser.events[0].retry is not None
    assert b": heartbeat\nid: " in connection.raw_body
    # Nothing moved meanwhile: the heartbeat's id stands for the positions the hello's did (the
    # two may be spelled differently, once the web process follows the consumer's positions log).
    partitions = [(stack.env["KAFKA_TOPIC"], partition) for partition in range(PARTITIONS)]
    hello = await id_positions(connection.parser.events[1].id, partitions, env=stack.env)
    assert await id_positions(connection.parser.last_id, partitions, env=stack.env) == hello


@pytest.mark.parametrize(
    "limits",
    [
        # its queue of frames fills up
        {"SSE_CLIENT_BUFFER": "20", "SSE_WRITE_BUFFER_BYTES": str(64 << 20), "SSE_STALL_TIMEOUT": "600"},
        # Daphne's unsent bytes for it stay over the limit (the queue alone would never fill)
        {"SSE_CLIENT_BUFFER": "100000", "SSE_WRITE_BUFFER_BYTES": "16384", "SSE_STALL_TIMEOUT": "1"},
    ],
    ids=["queue-full", "write-buffer-stalled"],
)
async def test_a_client_that_stops_reading_is_sent_away_with_its_id_and_loses_nothing(
    stack, kafka, topic, limits
):
    port = await ready_stack(stack, **limits)
    stalled = await SseConnection.open("127.0.0.1", port, "/crm-events", receive_buffer=4096)
    await stalled.events_until(lambda e: len(e) >= 2, timeout=10)
    padding = "x" * 1000
    count = 5000  # about 5 MB: more than the kernel's socket buffers hold
    positions = await produce(
        kafka.bootstrap, topic, json_values(count, pad=padding), partitions=[i % 3 for i in range(count)]
    )
    # The server gives up on it by itself: its stream ends while the client reads nothing.
    wait_until(lambda: streams(port) == 0, timeout=60, what="the stalled stream to be ended")

    events = await stalled.events_until(lambda e: False, timeout=30)  # read to the end
    assert stalled.ended
    reason, resume_id = farewell(events)
    assert reason == "slow"
    first_part = domain(events)
    assert len(first_part) < count

    # With a tiny buffer it may be sent away again while catching up: it resumes each time.
    resumed = ResumingClient([port], "/crm-events", cuts=[])
    resumed.last_id = resume_id
    await resumed.run(lambda c: len(first_part) + len(c.received) >= count, timeout=120)
    got = [(e["partition"], e["offset"]) for e in first_part + resumed.received]
    assert len(got) == len(set(got))
    assert set(got) == set(positions)


async def test_a_stream_ends_at_its_lifetime_with_a_resume_id(stack, kafka, topic):
    port = await ready_stack(stack, SSE_MAX_LIFETIME="1.5")
    connection = await SseConnection.open("127.0.0.1", port, "/crm-events")
    events = await connection.events_until(lambda e: False, timeout=30)
    assert connection.ended
    reason, resume_id = farewell(events)
    assert reason == "lifetime"
    # Whatever happens while the client is away comes with the resume, exactly.
    later = await produce(kafka.bootstrap, topic, json_values(3), partitions=[0, 1, 2])
    resumed = await SseConnection.open("127.0.0.1", port, "/crm-events", {"Last-Event-ID": resume_id})
    await resumed.events_until(lambda e: len(domain(e)) >= 3, timeout=15)
    resumed.close()
    assert sorted((e["partition"], e["offset"]) for e in domain(resumed.parser.events)) == sorted(later)


async def test_sigterm_sends_every_stream_its_resume_id_before_exit(stack, kafka, topic):
    port = await ready_stack(stack)
    _, second_port = stack.daphne("daphne-2")
    stack.wait_ready(second_port)
    web = stack.processes[1]
    clients = [await SseConnection.open("127.0.0.1", port, "/crm-events") for _ in range(3)]
    for client in clients:
        await client.events_until(lambda e: len(e) >= 2, timeout=10)
    first = await produce(kafka.bootstrap, topic, json_values(6), partitions=[0, 1, 2] * 2)
    for client in clients:
        await client.events_until(lambda e: len(domain(e)) >= 6, timeout=15)

    web.signal(signal.SIGTERM)
    for client in clients:
        events = await client.events_until(lambda e: False, timeout=15)
        assert client.ended
        assert farewell(events)[0] == "shutdown"
    assert web.process.wait(timeout=15) == 0
    assert "stopping: closing streams with their resume ids" in web.log_text()

    later = await produce(kafka.bootstrap, topic, json_values(3), partitions=[2, 1, 0])
    resume_id = farewell(clients[0].parser.events)[1]
    resumed = await SseConnection.open(
        "127.0.0.1", second_port, "/crm-events", {"Last-Event-ID": resume_id}
    )
    await resumed.events_until(lambda e: len(domain(e)) >= 3, timeout=15)
    resumed.close()
    assert sorted((e["partition"], e["offset"]) for e in domain(resumed.parser.events)) == sorted(later)
    assert len(first) == 6


async def test_streams_are_released_when_clients_leave(stack):
    port = await ready_stack(stack)
    clients = [await SseConnection.open("127.0.0.1", port, "/crm-events") for _ in range(50)]
    for client in clients:
        await client.events_until(lambda e: len(e) >= 2, timeout=10)
    assert streams(port) == 50
    for client in clients[:25]:
        client.close()
    for client in clients[25:]:
        client.abort()
    await async_wait_until(lambda: streams(port) == 0, timeout=20, what="all 50 streams released")


def test_frames_of_one_event_are_identical_for_every_client(stack, kafka, topic):
    async def scenario() -> list[bytes]:
        port = await ready_stack(stack)
        clients = [await SseConnection.open("127.0.0.1", port, "/crm-events") for _ in range(3)]
        for client in clients:
            await client.events_until(lambda e: len(e) >= 2, timeout=10)
        await produce(kafka.bootstrap, topic, [json.dumps({"type": "deal.won"}).encode()], partitions=[1])
        bodies = []
        for client in clients:
            await client.events_until(lambda e: len(domain(e)) >= 1, timeout=15)
            client.close()
            bodies.append(client.raw_body.split(b"\n\n", 2)[2])  # after retry and connected
        return bodies

    bodies = asyncio.run(scenario())
    assert bodies[0] == bodies[1] == bodies[2]
    assert bodies[0].startswith(b"id: ") and b'"type":"deal.won"' in bodies[0]
