"""Transactions on the real broker: clients see committed records only, and never wait on
an aborted one (read_committed everywhere, the live edge at the last stable offset)."""

from __future__ import annotations

import json
import re

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from tests.integration.conftest import PARTITIONS
from tests.support.kafka_log import assert_exactly, domain_events, gap_frames, log_read, read_until_count
from tests.support.processes import async_wait_until
from tests.support.sse_client import SseConnection

ROUNDS = 6  # each: plain records, and a transaction across every partition with plain records inside it
READ_TIMEOUT = 60


def value(seq: int, kind: str) -> bytes:
    return json.dumps({"type": "deal.won", "seq": seq, "written": kind}).encode()


async def transactional_producer(bootstrap: str, topic: str) -> AIOKafkaProducer:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, transactional_id=f"tx-{topic}", acks="all")
    await producer.start()
    return producer


async def plain_producer(bootstrap: str) -> AIOKafkaProducer:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    return producer


async def write_interleaved(bootstrap: str, topic: str) -> tuple[set, set]:
    """Committed and aborted transactions interleaved with plain records, in every partition.
    Returns the positions clients must get (plain and committed) and those they must not."""
    visible, aborted = set(), set()
    transactional, plain = await transactional_producer(bootstrap, topic), await plain_producer(bootstrap)
    seq = 0
    try:
        for round_ in range(ROUNDS):
            commit = round_ % 2 == 0
            for partition in range(PARTITIONS):
                meta = await plain.send_and_wait(topic, value(seq, "plain"), partition=partition)
                visible.add((meta.partition, meta.offset))
                seq += 1
            await transactional.begin_transaction()
            for partition in range(PARTITIONS):
                for _ in range(2):
                    meta = await transactional.send_and_wait(
                        topic, value(seq, "committed" if commit else "aborted"), partition=partition
                    )
                    (visible if commit else aborted).add((meta.partition, meta.offset))
                    seq += 1
                # A plain record while the transaction is open: visible, once it has ended.
                meta = await plain.send_and_wait(topic, value(seq, "plain"), partition=partition)
                visible.add((meta.partition, meta.offset))
                seq += 1
            await (transactional.commit_transaction() if commit else transactional.abort_transaction())
    finally:
        await transactional.stop()
        await plain.stop()
    return visible, aborted


async def sentinels(bootstrap: str, topic: str) -> set:
    """One plain record per partition after everything else: a stream that has them has been
    offered every earlier offset, so an aborted record would have shown up by then."""
    producer = await plain_producer(bootstrap)
    try:
        metas = [
            await producer.send_and_wait(topic, value(-1, "plain"), partition=p) for p in range(PARTITIONS)
        ]
    finally:
        await producer.stop()
    return {(meta.partition, meta.offset) for meta in metas}


# The hub looks at its partitions every second: an open transaction holds the end offsets at
# the last stable offset, and that must never look like a log that started over.
WATCH_OFTEN = {"KAFKA_METADATA_MAX_AGE": "1"}


def assert_no_repair_no_resync(log: str) -> None:
    assert "live path lost" not in log, "the hub repaired a range that only held markers or aborted records"
    assert not re.search(r"stream ended \(resync\)", log), "a stream was resynced"
    assert "started over" not in log and "no longer exists" not in log


@pytest.mark.kafka_oldest
async def test_only_committed_and_plain_records_reach_live_replayed_and_resumed_streams(stack, kafka, topic):
    stack.env.update(WATCH_OFTEN)
    stack.consumer()
    daphne, port = stack.daphne()
    stack.wait_ready(port)
    live = await SseConnection.open("127.0.0.1", port, "/crm-events")
    await live.events_until(lambda events: any('"connected"' in e.data for e in events), timeout=10)

    visible, aborted = await write_interleaved(kafka.bootstrap, topic)
    visible |= await sentinels(kafka.bootstrap, topic)
    # The test means something: the aborted records and the transaction markers are in the log.
    uncommitted = await log_read(kafka.bootstrap, topic, isolation_level="read_uncommitted")
    assert aborted and aborted <= uncommitted.keys()
    committed = await log_read(kafka.bootstrap, topic)
    assert committed.keys() == visible
    # Even read uncommitted, the commit and abort markers are holes between the records.
    holes = {
        (p, o) for p in range(PARTITIONS)
        for o in range(max(o for q, o in uncommitted if q == p)) if (p, o) not in uncommitted
    }
    assert len(holes) == PARTITIONS * ROUNDS, "one transaction marker per partition and round"

    got_live = await read_until_count(live, len(visible), READ_TIMEOUT)
    replayed = await SseConnection.open("127.0.0.1", port, "/crm-events?from=earliest")
    got_replayed = await read_until_count(replayed, len(visible), READ_TIMEOUT)
    middle = len(got_live) // 2
    token = [e.id for e in live.parser.events if e.event is None and '"domain_event"' in e.data][middle]
    resumed = await SseConnection.open("127.0.0.1", port, "/crm-events", {"Last-Event-ID": token})
    rest = {(e["partition"], e["offset"]) for e in got_live[middle + 1:]}
    got_resumed = await read_until_count(resumed, len(rest), READ_TIMEOUT)

    for connection, got, expected in [
        (live, got_live, visible), (replayed, got_replayed, visible), (resumed, got_resumed, rest)
    ]:
        connection.close()
        assert_exactly(domain_events(connection), expected)
        assert not any(event["value"]["written"] == "aborted" for event in got)
        assert gap_frames(connection) == []
        assert not connection.ended, "the stream was ended by the server"
    assert_no_repair_no_resync(daphne.log_text())


async def test_an_open_transaction_holds_the_live_edge_until_it_commits(stack, kafka, topic):
    transactional, plain = (
        await transactional_producer(kafka.bootstrap, topic), await plain_producer(kafka.bootstrap)
    )
    try:
        await transactional.begin_transaction()
        held = set()
        for partition in range(PARTITIONS):
            meta = await transactional.send_and_wait(
                topic, value(partition, "committed"), partition=partition
            )
            held.add((meta.partition, meta.offset))
        meta = await plain.send_and_wait(topic, value(9, "plain"), partition=0)  # behind the open one
        held.add((meta.partition, meta.offset))
        # What the hub starts from: a read_committed reader's end offsets are the LSO, not the end.
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        for isolation_level, expected in [("read_committed", 0), ("read_uncommitted", None)]:
            reader = AIOKafkaConsumer(bootstrap_servers=kafka.bootstrap, isolation_level=isolation_level)
            await reader.start()
            try:
                ends = await reader.end_offsets(tps)
            finally:
                await reader.stop()
            if expected is not None:
                assert set(ends.values()) == {expected}
            else:
                assert ends[tps[0]] == 2 and ends[tps[1]] == ends[tps[2]] == 1

        # The web process starts, and a stream opens, while the transaction is open.
        stack.env.update(WATCH_OFTEN)
        stack.consumer()
        daphne, port = stack.daphne()
        stack.wait_ready(port)
        await async_wait_until(
            lambda: "event hub positioned at" in daphne.log_text(), timeout=30, what="the hub's positions"
        )
        assert re.search(rf"{re.escape(topic)}:0@0, {re.escape(topic)}:1@0, {re.escape(topic)}:2@0",
                         daphne.log_text()), "the hub did not start at the last stable offsets"
        latest = await SseConnection.open("127.0.0.1", port, "/crm-events?from=latest")
        await latest.events_until(lambda events: any('"connected"' in e.data for e in events), timeout=10)
        await transactional.commit_transaction()
    finally:
        await transactional.stop()
        await plain.stop()
    got = await read_until_count(latest, len(held), READ_TIMEOUT)
    latest.close()
    assert_exactly(got, held)
    assert gap_frames(latest) == []
    assert_no_repair_no_resync(daphne.log_text())
