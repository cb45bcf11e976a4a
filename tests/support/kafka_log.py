"""Reading a topic back as the broker has it, and streams' frames as tests compare them."""

from __future__ import annotations

import asyncio
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from tests.support.sse_client import SseConnection

Position = tuple[int, int]  # (partition, offset) within the test's one topic


async def log_read(
    bootstrap: str, topic: str, *, isolation_level: str = "read_committed", timeout: float = 30
) -> dict[Position, bytes | None]:
    """Every record of every partition of `topic`, from log start to end, by position."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        [described] = await admin.describe_topics([topic])
    finally:
        await admin.close()
    tps = [TopicPartition(topic, partition["partition"]) for partition in described["partitions"]]
    reader = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
        auto_offset_reset="earliest", isolation_level=isolation_level,
    )
    await reader.start()
    try:
        async with asyncio.timeout(timeout):
            reader.assign(tps)
            await reader.seek_to_beginning(*tps)
            ends = await reader.end_offsets(tps)
            records: dict[Position, bytes | None] = {}
            while any([await reader.position(tp) < ends[tp] for tp in tps]):
                for batch in (await reader.getmany(*tps, timeout_ms=500)).values():
                    records.update({(r.partition, r.offset): r.value for r in batch})
            return records
    finally:
        await reader.stop()


def domain_events(connection: SseConnection) -> list[dict[str, Any]]:
    """The domain events an old client (unnamed frames) received, in arrival order."""
    return [
        e.json() for e in connection.parser.events
        if e.event is None and e.data and '"kind":"domain_event"' in e.data
    ]


def positions_of(events: list[dict[str, Any]]) -> list[Position]:
    return [(event["partition"], event["offset"]) for event in events]


def assert_exactly(events: list[dict[str, Any]], expected: set[Position]) -> None:
    """Every expected record once, nothing else, in offset order within each partition."""
    got = positions_of(events)
    assert len(got) == len(set(got)), f"duplicates: {sorted(p for p in got if got.count(p) > 1)}"
    assert set(got) == expected, f"missing {sorted(expected - set(got))}, extra {sorted(set(got) - expected)}"
    for partition in {p for p, _ in got}:
        offsets = [o for p, o in got if p == partition]
        assert offsets == sorted(offsets), f"partition {partition} out of order: {offsets}"


def gap_frames(connection: SseConnection) -> list[Any]:
    """Every gap report, named or not."""
    return [e.json() for e in connection.parser.events if e.data and '"kind":"gap"' in e.data]


async def read_until_count(connection: SseConnection, count: int, timeout: float) -> list[dict[str, Any]]:
    """Read until the connection holds at least `count` domain events; fail after `timeout`."""
    await connection.events_until(lambda _events: len(domain_events(connection)) >= count, timeout)
    events = domain_events(connection)
    assert len(events) >= count, f"{len(events)} of {count} events within {timeout}s"
    return events
