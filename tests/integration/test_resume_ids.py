"""Resume ids of bounded size on a 400-partition topic: short on the live path, exact on resume
by header and by query, on any web process; version 1 ids issued before keep resuming."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

from crm_events.core.tokens import token_encode
from tests.integration.conftest import Stack, produce, topic_create
from tests.support.sse_client import SseConnection

PARTITIONS = 400
LIVE_ID_MAX = 64


@pytest.fixture
def wide(kafka, env: dict[str, str], tmp_path: Path) -> Iterator[tuple[Stack, str]]:
    name = f"crm-wide-{uuid.uuid4().hex[:10]}"
    asyncio.run(topic_create(kafka.bootstrap, name, partitions=PARTITIONS))
    running = Stack({**env, "KAFKA_TOPIC": name}, tmp_path)
    yield running, name
    running.stop_all()


def consumer_and_two_web_processes(stack: Stack) -> tuple[int, int]:
    stack.consumer()
    _, port_a = stack.daphne("daphne-a")
    _, port_b = stack.daphne("daphne-b")
    stack.wait_ready(port_a)
    stack.wait_ready(port_b)
    return port_a, port_b


def domain(events) -> list:
    return [e for e in events if e.data and '"domain_event"' in e.data]


async def produce_everywhere(bootstrap: str, topic: str, rounds: int, first: int) -> list[tuple[int, int]]:
    values = [json.dumps({"type": "deal.won", "seq": first + i}).encode() for i in range(rounds * PARTITIONS)]
    return await produce(bootstrap, topic, values, partitions=[i % PARTITIONS for i in range(len(values))])


async def read(port: int, path: str, count: int, headers: dict | None = None) -> list:
    connection = await SseConnection.open("127.0.0.1", port, path, headers)
    assert connection.status == 200
    events = await connection.events_until(lambda e: len(domain(e)) >= count, timeout=90)
    connection.close()
    return domain(events)


def positions_of(events) -> list[tuple[int, int]]:
    return [(e.json()["partition"], e.json()["offset"]) for e in events]


@pytest.mark.kafka_oldest
async def test_ids_stay_short_and_resume_exactly_by_header_query_and_version_1(wide, kafka):
    stack, topic = wide
    port_a, port_b = consumer_and_two_web_processes(stack)

    live = await SseConnection.open("127.0.0.1", port_a, "/crm-events")
    await live.events_until(lambda e: any(x.data and '"connected"' in x.data for x in e), timeout=30)
    first = await produce_everywhere(kafka.bootstrap, topic, 2, first=0)
    events = domain(await live.events_until(lambda e: len(domain(e)) >= len(first), timeout=90))
    live.close()
    assert sorted(positions_of(events)) == sorted(first)
    # The positions log numbers each batch: once the hub follows it, every id is short.
    assert max(len(e.id) for e in events[len(events) // 2 :]) <= LIVE_ID_MAX

    cut = len(events) // 3
    resume_id = events[cut].id
    seen = set(positions_of(events[: cut + 1]))
    more = await produce_everywhere(kafka.bootstrap, topic, 1, first=len(first))
    owed = sorted(set(first) - seen | set(more))

    by_header = await read(port_b, "/crm-events", len(owed), {"Last-Event-ID": resume_id})
    by_query = await read(port_a, f"/crm-events?last_event_id={quote(resume_id)}", len(owed))
    for resumed in (by_header, by_query):
        got = positions_of(resumed)
        assert len(got) == len(set(got)), "duplicates"
        assert sorted(got) == owed
        # Replayed along the positions log, the catch-up's frames carry short ids too.
        assert max(len(e.id) for e in resumed) <= LIVE_ID_MAX

    # An id of the old format, spelling out all 400 partitions, resumes the same.
    standing = {(topic, p): 0 for p in range(PARTITIONS)}
    for partition, offset in seen:
        standing[(topic, partition)] = max(standing[(topic, partition)], offset + 1)
    old = await read(port_b, "/crm-events", len(owed), {"Last-Event-ID": token_encode(standing)})
    assert sorted(positions_of(old)) == owed


async def test_a_replay_from_earliest_carries_short_ids_and_resumes_exactly_from_any_of_them(wide, kafka):
    stack, topic = wide
    port_a, port_b = consumer_and_two_web_processes(stack)
    history = await produce_everywhere(kafka.bootstrap, topic, 2, first=0)

    # Caught up partition by partition from positions no log point names (the log's start).
    replayed = await read(port_a, "/crm-events?from=earliest", len(history))
    assert sorted(positions_of(replayed)) == sorted(history)
    assert max(len(e.id) for e in replayed) <= LIVE_ID_MAX

    for cut in (0, len(replayed) // 3, len(replayed) - 1):
        owed = sorted(set(history) - set(positions_of(replayed[: cut + 1])))
        if not owed:
            continue
        resumed = await read(port_b, "/crm-events", len(owed), {"Last-Event-ID": replayed[cut].id})
        got = positions_of(resumed)
        assert len(got) == len(set(got)), "duplicates"
        assert sorted(got) == owed
        assert max(len(e.id) for e in resumed) <= LIVE_ID_MAX
