"""Fault tolerance: records no one planned for, written by a foreign client, interleaved with normal ones.

JSON that Python reads but RFC 8259 or the channel layer refuse (lone surrogate escapes, NaN,
overflowing numbers, 64-bit-plus integers, repeated names, deep nesting), bytes that are not
UTF-8 in values, keys and header values, keys and header values that once arrived alike (none and
empty, binary and text that looks like a marker), and header NAMES that are not UTF-8, which the
service's own Kafka client cannot even parse. Every record must arrive exactly once, live and
replayed, as what docs/stream.md says (`value_format` json / text / base64 / undecodable); the
consumer must stay up (also across a restart), its lag must return to 0, and every undecodable
record must be copied to the dead-letter topic with headers saying where it came from.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import time
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from tests.integration.conftest import topic_create
from tests.support import record_contract
from tests.support.eventsource import BrowserClient
from tests.support.faults import Record, clients_connected, clients_finish, figures_count, report
from tests.support.foreign_producer import ForeignRecord, RawHeaderName, foreign_produce
from tests.support.processes import http_get, wait_until

pytestmark = pytest.mark.faults

PARTITIONS = 3


@dataclass
class Hostile:
    """A record to write and what every client must see of it."""

    value: bytes | None
    value_format: str
    expected_value: Any = None
    type: str | None = None
    key: bytes | None = None
    headers: list[tuple[str, bytes | None]] = field(default_factory=list)

    @property
    def undecodable(self) -> bool:
        return self.value_format == "undecodable"


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def as_text(text: str) -> Hostile:
    return Hostile(text.encode(), "text", text)


def normal(seq: int) -> Hostile:
    value = {"type": "deal.won", "seq": seq}
    return Hostile(json.dumps(value).encode(), "json", value, type="deal.won", key=f"deal-{seq}".encode())


def unparseable(seq: int) -> Hostile:
    """A header name that is not UTF-8: aiokafka raises on it, so only the position is known."""
    return Hostile(b'{"type":"deal.won"}', "undecodable", key=b"lost",
                   headers=[(RawHeaderName(b"\xff\xfe-name"), b"v"), ("seq", str(seq).encode())])


def lookalikes() -> Hostile:
    """Keys and header values that once arrived alike (issue 18): binary, and text that looks like
    the old `base64:` marker or like the new `{"base64": ...}` object. (kafka-python refuses a
    header of no value, so test_faults_bad_records, written by aiokafka, has those.)"""
    return Hostile(b'{"type":"deal.won"}', "json", {"type": "deal.won"}, type="deal.won", key=b"base64:/w==",
                   headers=[("e", b""), ("b", b"\xff\xfe"), ("t", b"base64://4="),
                            ("j", b'{"base64":"//4="}'), ("r", b""), ("r", b"\xff\xfe"), ("r", b"base64://4=")])


def hostile_batch(seq: int) -> list[list[Hostile]]:
    """Every class once, each between two normal records, plus two unparseable ones in a row; each
    record in a Kafka record batch of its own, but for the last group (see `collateral`)."""
    nested = "[" * 150 + "]" * 150
    shapes = [
        as_text('{"type":"deal.won","note":"\\ud800"}'), as_text('{"type":"deal.won","amount":NaN}'),
        as_text('{"type":"deal.won","n":1e400}'), as_text('{"type":"deal.won","n":' + "7" * 30 + "}"),
        as_text('{"type":"deal.won","a":1,"a":2}'), as_text(nested), as_text("[" * 600 + "]" * 600),
        Hostile(b"\xed\xa0\x80", "base64", b64(b"\xed\xa0\x80")),  # an encoded surrogate: not UTF-8
        Hostile(b"\xff\x00binary", "base64", b64(b"\xff\x00binary"), key=b"\xff\xfe"),
        Hostile(b'{"type":"deal.won"}', "json", {"type": "deal.won"}, type="deal.won",
                headers=[("bin", b"\xff"), ("empty", b""), ("bin", b"ok")]),
        Hostile(json.dumps("\u2028 \x00 \U0001f600").encode(), "json", "\u2028 \x00 \U0001f600"),
        lookalikes(), Hostile(b"", "empty", key=b"", headers=[("only-empty", b"")]),
        unparseable(seq), unparseable(seq + 1),
    ]
    records = []
    for i, shape in enumerate(shapes):
        records += [normal(seq + 2 * i), shape]
    return [[record] for record in [*records, normal(seq + 999)]] + [collateral(seq + 1000)]


def collateral(seq: int) -> list[Hostile]:
    """A record batch holding a good record, an unparseable one, then a good one. The Kafka client
    parses a batch as a whole, so the record after the unparseable one cannot be read either: it
    arrives marked too (docs/stream.md); the one before it arrives whole."""
    after = unparseable(seq + 2)
    after.headers = [("seq", str(seq + 2).encode())]  # itself fine: only its batch is not
    return [normal(seq), unparseable(seq + 1), after]


def payload_expected(hostile: Hostile) -> dict[str, Any]:
    if hostile.undecodable:  # nothing of it could be read: no key, no headers
        return {"value": None, "value_format": "undecodable", "key": None, "headers": {}, "type": None}
    return {"value": hostile.expected_value, "value_format": hostile.value_format,
            "key": record_contract.bytes_expected(hostile.key),
            "headers": record_contract.headers_expected(hostile.headers), "type": hostile.type}


def problems_of(clients: list[BrowserClient], by_position: dict[tuple[int, int], Hostile]) -> list[str]:
    found = []
    for client in clients:
        for payload in client.received:
            owed = payload_expected(by_position[(payload["partition"], payload["offset"])])
            seen = {name: payload.get(name) for name in owed}
            if seen != owed:
                found.append(f"{client.name} {payload['partition']}:{payload['offset']}: {seen} != {owed}")
            if owed["value_format"] == "undecodable" and "UnicodeDecodeError" not in payload.get("error", ""):
                found.append(f"{client.name}: undecodable without its reason: {payload}")
    return found


async def produce_batches(
    bootstrap: str, topic: str, batches: list[list[Hostile]]
) -> dict[tuple[int, int], Hostile]:
    """Records spread over the partitions in turn; a group (a batch) stays in one partition."""
    records = [[ForeignRecord(h.value, key=h.key, headers=h.headers, partition=i % PARTITIONS) for h in batch]
               for i, batch in enumerate(batches)]
    positions = await asyncio.to_thread(foreign_produce, bootstrap, topic, records)
    return dict(zip(positions, [h for batch in batches for h in batch], strict=True))


async def dead_letters(bootstrap: str, topic: str, count: int, timeout: float = 60) -> list[Any]:
    reader = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest")
    await reader.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        reader.assign(tps)
        found: list[Any] = []
        deadline = time.monotonic() + timeout
        while len(found) < count and time.monotonic() < deadline:
            for batch in (await reader.getmany(timeout_ms=500)).values():
                found += batch
        return found
    finally:
        await reader.stop()


def lags(port: int) -> list[float]:
    """The consumer lag per partition that this web process exports (from consumer heartbeats)."""
    text = http_get(port, "/metrics")[1].decode()
    return [float(v) for v in re.findall(r"^aetherlink_consumer_lag\{[^}]*\} (\S+)$", text, re.M)]


@pytest.mark.kafka_oldest
async def test_hostile_records_from_a_foreign_client_arrive_once_live_and_replayed(
    stack, kafka, topic, capsys
):
    dead_letter_topic = f"{topic}.dead-letters"
    await topic_create(kafka.bootstrap, dead_letter_topic)
    stack.env.update(
        SSE_RETRY_MS="500", SSE_HEARTBEAT_INTERVAL="2", KAFKA_DEAD_LETTER_TOPIC=dead_letter_topic
    )
    consumer = stack.consumer()
    _, port = stack.daphne()
    stack.wait_ready(port)
    by_position: dict[tuple[int, int], Hostile] = {}

    def deals(record: Record) -> bool:
        return by_position[record.position].type == "deal.won"

    live = [BrowserClient("all", [port], "", lambda r: True, seed=1),
            BrowserClient("all-cut", [port], "", lambda r: True, seed=2, cuts=[700, 3_000, 9_000]),
            BrowserClient("deals", [port], "kind=deal", deals, seed=3)]
    deadline = time.monotonic() + 240
    tasks = [asyncio.create_task(client.run(deadline)) for client in live]
    await clients_connected(live)
    by_position.update(await produce_batches(kafka.bootstrap, topic, hostile_batch(0)))
    wait_until(lambda: lags(port) and not any(lags(port)), timeout=60, what="consumer lag back to 0")

    # A restarted consumer takes up after the hostile records, and survives a second batch.
    consumer.stop()
    assert consumer.process.returncode == 0, consumer.log_text()[-2000:]
    second = stack.consumer("consumer-2")
    by_position.update(await produce_batches(kafka.bootstrap, topic, hostile_batch(10_000)))
    # A client that arrives later replays all of it from Kafka, through the same decoding.
    replaying = BrowserClient("replay", [port], "", lambda r: True, seed=4)
    tasks.append(asyncio.create_task(replaying.run(deadline)))
    clients = [*live, replaying]
    records = [Record(p, o, None, None, ()) for p, o in by_position]
    await clients_finish(clients, tasks, records)
    # The stopped consumer's last lag expires with READY_HEARTBEAT_MAX_AGE (15 s).
    wait_until(lambda: lags(port) and not any(lags(port)), timeout=60, what="consumer lag back to 0")

    problems = problems_of(clients, by_position)
    undecodable = [p for p, h in by_position.items() if h.undecodable]
    copies = await dead_letters(kafka.bootstrap, dead_letter_topic, len(undecodable))
    figures = figures_count(
        "hostile-records", clients, len(records), recovery_s=None, misdecoded=len(problems),
        undecodable=len(undecodable), dead_lettered=len(copies),
        consumer_errors=consumer.log_text().count("Traceback") + second.log_text().count("Traceback"),
    )
    report(figures, capsys)
    assert problems == [], problems[:5]
    missing = {c.name: sorted(c.expected - set(c.arrivals)) for c in clients if c.expected - set(c.arrivals)}
    assert not missing, missing
    figures.assert_exact()
    assert second.is_running() and "Traceback" not in consumer.log_text() + second.log_text()
    # Each undecodable record once in the dead-letter topic, saying where it came from and why.
    origins = sorted(
        (int(h["aetherlink.errors.partition"]), int(h["aetherlink.errors.offset"]))
        for h in ({k: v.decode() for k, v in copy.headers} for copy in copies)
    )
    assert origins == sorted(undecodable)
    assert all(dict(copy.headers)["aetherlink.errors.topic"] == topic.encode() for copy in copies)
    assert all(b"cannot parse" in dict(copy.headers)["aetherlink.errors.reason"] for copy in copies)
    assert http_get(port, "/readyz")[0] == 200
