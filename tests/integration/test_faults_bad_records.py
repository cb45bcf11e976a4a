"""Fault tolerance: 1,000 records of every shape a producer can write, while browsers read.

Valid JSON, JSON that is not an object, text, binary, empty values, tombstones, invalid UTF-8,
NaN, absurd nesting, a 1 MB JSON value and a 1 MB binary value, null, empty and binary keys, and
hundreds of headers (repeated names, binary, empty and null values). The consumer must stay up,
every record must reach every browser whose filter wants it, and each must come marked with
what it was (`value_format` json / text / base64 / empty), decoded exactly as docs/stream.md says.
"""

from __future__ import annotations

import asyncio
import base64
import json
import random
import time
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.integration.conftest import produce
from tests.support import record_contract
from tests.support.eventsource import BrowserClient
from tests.support.faults import Record, clients_connected, clients_finish, figures_count, report
from tests.support.processes import http_get

pytestmark = pytest.mark.faults

RECORDS = 1000
BIG = 1_000_000  # bytes: "1 MB", under the broker's default 1 MiB record limit


@dataclass
class Shape:
    """One record to produce and what a client must see of it."""

    value: bytes | None
    expected_value: Any
    value_format: str
    key: bytes | None = None
    headers: list[tuple[str, bytes | None]] = field(default_factory=list)

    @property
    def type(self) -> str | None:
        value = self.expected_value
        if self.value_format == "json" and isinstance(value, dict) and isinstance(value.get("type"), str):
            return value["type"]
        return None


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def shape(i: int, rng: random.Random) -> Shape:
    kind = i % 12
    if kind == 0:
        value = {"type": random_type(rng), "seq": i, "note": "ünïcödé \u2028 \"quoted\" \n data: x"}
        return Shape(json.dumps(value).encode(), value, "json", key=f"deal-{i}".encode())
    if kind == 1:
        value = rng.choice([[1, 2, 3], "just a string", 42, None, True, {"no": "type"}, {"type": 7}])
        return Shape(json.dumps(value).encode(), value, "json")
    if kind == 2:
        text = rng.choice(["not json {", "line one\nline two\r\ndata: injected\n\n", "id: 99", "é" * 50])
        return Shape(text.encode(), text, "text", key=b"text-key")
    if kind == 3:
        raw = bytes([0xFF, 0xFE]) + rng.randbytes(rng.randint(1, 300))
        return Shape(raw, b64(raw), "base64")
    if kind == 4:
        return Shape(b"", None, "empty")
    if kind == 5:
        return Shape(None, None, "empty", key=f"tombstone-{i}".encode())  # a delete marker
    if kind == 6:
        raw = b'{"type":"deal.won","name":"\xc3\x28"}'  # JSON-shaped, but not UTF-8
        return Shape(raw, b64(raw), "base64", key=b"\xff\x00binary-key")
    if kind == 7:
        raw = rng.choice([b'{"type":"deal.won","amount":NaN}', b"[" * 100_000, b"Infinity"])
        return Shape(raw, raw.decode(), "text")
    if kind == 8:
        value = {"type": "ticket.opened", "seq": i}
        headers = [(f"h{n % 150}", header_value(n, rng)) for n in range(300)]
        return Shape(json.dumps(value).encode(), value, "json", key=None, headers=headers)
    if kind == 9:
        value = {"type": "deal.stage_changed", "seq": i}
        return Shape(json.dumps(value).encode(), value, "json", key=None, headers=[("event-type", b"x")])
    if kind == 10:
        text = "\U0001f600 emoji, \x00 NUL, \x1b[31m escape, \u2028 separator"
        return Shape(text.encode(), text, "text")
    value = {"type": "ticket.resolved", "seq": i, "deal": {"stage": "won"}}
    return Shape(json.dumps(value).encode(), value, "json", key=b"")


def header_value(n: int, rng: random.Random) -> bytes | None:
    """Binary, none (a null header value), empty and text values: each arrives as itself."""
    if n % 5 == 0:
        return b"\xff\xfe"
    return None if n % 7 == 3 else rng.randbytes(n % 7)


def random_type(rng: random.Random) -> str:
    return rng.choice(["deal.won", "deal.lost", "ticket.opened", "contact.created"])


def big_shapes() -> list[Shape]:
    big_json = {"type": "deal.won", "blob": "x" * (BIG - 40)}
    big_binary = b"\xff" + bytes(range(256)) * (BIG // 256)
    return [
        Shape(json.dumps(big_json).encode(), big_json, "json", key=b"big-json"),
        Shape(big_binary, b64(big_binary), "base64", key=b"big-binary"),
    ]


def payload_problems(payload: dict[str, Any], wanted: Shape) -> list[str]:
    seen = {
        "value": payload["value"], "value_format": payload["value_format"], "key": payload["key"],
        "headers": payload["headers"], "type": payload["type"],
    }
    owed = {
        "value": wanted.expected_value, "value_format": wanted.value_format,
        "key": record_contract.bytes_expected(wanted.key),
        "headers": record_contract.headers_expected(wanted.headers), "type": wanted.type,
    }
    return [f"{name}: got {str(seen[name])[:80]!r}, want {str(owed[name])[:80]!r}"
            for name in owed if seen[name] != owed[name]]


async def test_a_thousand_bad_records_are_delivered_marked_and_the_consumer_stays_up(
    stack, kafka, topic, capsys
):
    stack.env.update(SSE_RETRY_MS="500", SSE_HEARTBEAT_INTERVAL="2")
    consumer = stack.consumer()
    _, port = stack.daphne()
    stack.wait_ready(port)
    rng = random.Random(2026)
    shapes = [shape(i, rng) for i in range(RECORDS - 2)]
    shapes[400:400] = big_shapes()
    by_position: dict[tuple[int, int], Shape] = {}

    def wants_deals(record: Record) -> bool:
        kind = by_position[record.position].type
        return kind is not None and kind.startswith("deal.")

    clients = [
        BrowserClient("all", [port], "", lambda record: True, seed=1),
        BrowserClient("all-cut", [port], "", lambda record: True, seed=2,
                      cuts=[rng.randint(1, 400_000) for _ in range(6)]),
        BrowserClient("deals", [port], "kind=deal", wants_deals, seed=3),
    ]
    deadline = time.monotonic() + 240
    tasks = [asyncio.create_task(client.run(deadline)) for client in clients]
    await clients_connected(clients)
    positions = await produce(
        kafka.bootstrap, topic, [s.value for s in shapes], keys=[s.key for s in shapes],
        partitions=[i % 3 for i in range(len(shapes))], headers=[s.headers for s in shapes],
    )
    by_position.update(zip(positions, shapes, strict=True))
    records = [Record(p, o, None, None, ()) for p, o in positions]
    await clients_finish(clients, tasks, records)

    problems = [
        f"{payload['partition']}:{payload['offset']} {problem}"
        for client in clients for payload in client.received
        for problem in payload_problems(payload, by_position[(payload["partition"], payload["offset"])])
    ]
    formats = {}
    for s in shapes:
        formats[s.value_format] = formats.get(s.value_format, 0) + 1
    figures = figures_count(
        "bad-records", clients, len(positions), recovery_s=None, value_formats=formats,
        misdecoded=len(problems), consumer_errors=consumer.log_text().count("Traceback"),
    )
    report(figures, capsys)
    figures.assert_exact()
    assert problems == [], problems[:10]
    assert consumer.is_running() and "Traceback" not in consumer.log_text()
    assert http_get(port, "/readyz")[0] == 200
