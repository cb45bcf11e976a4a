"""A compacted topic on the real broker: the offsets the log cleaner removed are holes, not
losses. Streams get every surviving record once, with no gap reported and nothing repaired."""

from __future__ import annotations

import asyncio
import json
import time
import uuid

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from tests.integration.conftest import PARTITIONS
from tests.support.kafka_log import assert_exactly, domain_events, gap_frames, log_read, read_until_count
from tests.support.processes import async_wait_until, http_get
from tests.support.sse_client import SseConnection

KEYS = 4
VERSIONS = 8  # of each key, in each partition
# The log cleaner may compact a rolled segment at once: segments roll every 100 ms (on the
# next append), a log is cleanable with 1 % of it dirty, and tombstones go after 100 ms.
COMPACT_NOW = {
    "cleanup.policy": "compact", "segment.ms": "100", "min.cleanable.dirty.ratio": "0.01",
    "delete.retention.ms": "100", "min.compaction.lag.ms": "0",
}


@pytest.fixture
def topic(kafka) -> str:
    """This module's topic is compacted (it replaces conftest's plain one for `env` and `stack`)."""
    name = f"crm-test-{uuid.uuid4().hex[:10]}"

    async def create() -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=kafka.bootstrap)
        await admin.start()
        try:
            await admin.create_topics([NewTopic(name, PARTITIONS, 1, topic_configs=COMPACT_NOW)])
        finally:
            await admin.close()

    asyncio.run(create())
    return name


async def compacted(bootstrap: str, topic: str, timeout: float = 60) -> dict:
    """Write versions of a few keys into every partition, rolling segments, until the cleaner has
    left holes in every partition; then stop compaction and return what survived, read back."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    seq = 0
    try:
        for _ in range(VERSIONS):
            for partition in range(PARTITIONS):
                for key in range(KEYS):
                    value = json.dumps({"type": "contact.updated", "seq": seq}).encode()
                    await producer.send_and_wait(topic, value, key=f"k{key}".encode(), partition=partition)
                    seq += 1
            await asyncio.sleep(0.11)  # past segment.ms, so the next append rolls a segment
        deadline = time.monotonic() + timeout
        while not _holes_everywhere(await log_read(bootstrap, topic)):
            assert time.monotonic() < deadline, "the log cleaner never compacted the topic"
            for partition in range(PARTITIONS):  # each append rolls the segment, so it can be cleaned
                value = json.dumps({"type": "contact.updated", "seq": seq}).encode()
                await producer.send_and_wait(topic, value, key=f"u{seq}".encode(), partition=partition)
                seq += 1
            await asyncio.sleep(0.3)
    finally:
        await producer.stop()
    await _compaction_stop(bootstrap, topic)
    return await _stable_log(bootstrap, topic)


def _holes_everywhere(records: dict) -> bool:
    return all(
        len([o for p, o in records if p == partition]) < max(o for p, o in records if p == partition) + 1
        for partition in range(PARTITIONS)
    )


async def _compaction_stop(bootstrap: str, topic: str) -> None:
    """From now on the log stays as it is (a delete policy with the default 7-day retention)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        policy = ConfigResource(ConfigResourceType.TOPIC, topic, {"cleanup.policy": "delete"})
        await admin.alter_configs([policy])
    finally:
        await admin.close()


async def _stable_log(bootstrap: str, topic: str, timeout: float = 30) -> dict:
    """The log once two reads, more than a cleaner pass apart, agree (one may be under way)."""
    deadline = time.monotonic() + timeout
    previous = await log_read(bootstrap, topic)
    while True:
        await asyncio.sleep(1.5)  # longer than log.cleaner.backoff.ms: a pass under way has ended
        current = await log_read(bootstrap, topic)
        if current == previous:
            return current
        assert time.monotonic() < deadline, "the compacted log never settled"
        previous = current


@pytest.mark.kafka_oldest
async def test_streams_of_a_compacted_topic_get_every_surviving_record_once_and_no_gap(
    stack, kafka, topic
):
    stack.env["KAFKA_METADATA_MAX_AGE"] = "1"  # the hub looks at its partitions every second
    daphne, port = stack.daphne()  # no consumer yet: the hub starts at the empty topic's end, 0
    http_get(port, "/readyz")  # 503 without a consumer, but the hub starts
    await async_wait_until(lambda: "event hub positioned at" in daphne.log_text(), timeout=30,
                           what="the hub's positions")
    live = await SseConnection.open("127.0.0.1", port, "/crm-events")
    await live.events_until(lambda events: any('"connected"' in e.data for e in events), timeout=10)

    survivors = await compacted(kafka.bootstrap, topic)
    assert _holes_everywhere(survivors)

    # The consumer now reads the compacted log (holes between records) into the live stream...
    stack.consumer()
    got_live = await read_until_count(live, len(survivors), timeout=60)
    # ...and a replay reads it straight from Kafka.
    replayed = await SseConnection.open("127.0.0.1", port, "/crm-events?from=earliest")
    got_replayed = await read_until_count(replayed, len(survivors), timeout=60)
    for connection, got in [(live, got_live), (replayed, got_replayed)]:
        connection.close()
        assert_exactly(domain_events(connection), set(survivors))
        assert [e["value"] for e in got] == [json.loads(survivors[e["partition"], e["offset"]]) for e in got]
        assert gap_frames(connection) == []
        assert not connection.ended
    log = daphne.log_text()
    assert "live path lost" not in log, "the hub repaired offsets the cleaner removed"
    assert "started over" not in log and "stream ended (resync)" not in log
