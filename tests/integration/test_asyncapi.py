"""`crm_events/asyncapi.yaml` is a valid AsyncAPI 3 document (the official parser, from Node), it
names what the service accepts and sends, and it is true: every frame and refusal captured from
a real stream (each value_format, both gap reasons, heartbeats, reconnects) validates against
exactly one of its messages' JSON schemas."""

from __future__ import annotations

import asyncio
import http.client
import json
import subprocess
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
import pytest
import yaml
from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, RecordsToDelete
from jsonschema import Draft7Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7

from crm_events.core.close_reasons import CloseReason
from crm_events.core.records import REGISTRY_FORMATS, VALUE_FORMATS, bytes_encode, record_decode
from crm_events.core.tokens import token_encode
from crm_events.ops import asyncapi_view
from crm_events.streams.request import REPEATABLE, SINGLE
from tests.support.foreign_producer import ForeignRecord, RawHeaderName, foreign_produce
from tests.support.node import TEST_TOOLS, node_ensure, npm_ensure
from tests.support.processes import async_wait_until, http_get
from tests.support.prometheus import metric_value, metrics_text
from tests.support.sse_client import SseConnection

pytestmark = pytest.mark.integration

DOCUMENT_PATH = Path(asyncapi_view.__file__).parents[1] / asyncapi_view.ASYNCAPI_RESOURCE
DOCUMENT = yaml.safe_load(DOCUMENT_PATH.read_text())
BASE = "urn:aetherlink:asyncapi"
REGISTRY = Registry().with_resource(BASE, Resource.from_contents(DOCUMENT, default_specification=DRAFT7))
STREAM_MESSAGES = {"retry", "connected", "domainEvent", "gapNamed", "gap", "heartbeat", "reconnect"}
ERROR_STATUSES = {"badRequest": 400, "unauthorized": 401, "forbidden": 403, "tooManyStreamsClient": 429,
                  "tooManyStreamsServer": 503, "serverError": 500, "methodNotAllowed": 405,
                  "requestLineTooLong": 414, "headersTooLarge": 431}
JWT_KEY = "asyncapi-test-secret-that-is-at-least-32-bytes"


@dataclass
class Record:
    """A record as aiokafka hands it, with the parts `record_decode` reads."""

    key: bytes | None
    headers: list[tuple[str, bytes | None]]
    value: bytes | None = b'{"type":"deal.won"}'
    topic: str = "t"
    partition: int = 0
    offset: int = 0
    timestamp: int = 0


def validator(pointer: str) -> Draft7Validator:
    return Draft7Validator({"$ref": f"{BASE}#{pointer}"}, registry=REGISTRY)


def parsed_by_the_official_parser() -> dict[str, Any]:
    npm_ensure(TEST_TOOLS)
    done = subprocess.run(
        [node_ensure(), str(TEST_TOOLS / "asyncapi-validate.mjs"), str(DOCUMENT_PATH)],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout)


def test_the_document_is_valid_and_names_what_the_service_has():
    parsed = parsed_by_the_official_parser()
    assert parsed["errors"] == 0 and parsed["diagnostics"] == [], parsed["diagnostics"]
    assert parsed["version"].startswith("3.")
    assert parsed["channels"] == [{"id": "crmEvents", "address": "/crm-events"}]
    operations = {op["id"]: op for op in parsed["operations"]}
    assert set(operations["sendCrmEvents"]["messages"]) == STREAM_MESSAGES
    assert set(operations["refuseStream"]["messages"]) == set(ERROR_STATUSES)
    statuses = {m["id"]: m["statusCode"] for m in parsed["messages"]}
    assert {name: statuses[name] for name in ERROR_STATUSES} == ERROR_STATUSES
    assert {s["id"]: s["type"] for s in parsed["securitySchemes"]} == {
        "bearerJwt": "http", "cookieJwt": "httpApiKey", "djangoSession": "httpApiKey"}
    # The query parameters are the service's own: repeatable ones as arrays.
    query = operations["sendCrmEvents"]["http"]["query"]["properties"]
    assert operations["sendCrmEvents"]["http"]["method"] == "GET"
    assert {name for name, schema in query.items() if schema.get("type") == "array"} == REPEATABLE
    assert {name for name, schema in query.items() if schema.get("type") != "array"} == SINGLE
    schemas = DOCUMENT["components"]["schemas"]
    assert set(schemas["ValueFormat"]["enum"]) == VALUE_FORMATS
    reasons = set(schemas["Reconnect"]["properties"]["reason"]["enum"])
    assert reasons == {*CloseReason, "unavailable"}


@pytest.mark.parametrize("raw", [None, b"", b"deal-1", b"base64:/w==", b'{"base64":"/w=="}', b"\xff",
                                 b"\xff\xfe", b"\xed\xa0\x80", bytes(range(256))])
def test_every_key_or_header_value_the_service_writes_is_a_record_bytes(raw):
    assert validator("/components/schemas/RecordBytes").is_valid(bytes_encode(raw))


@pytest.mark.parametrize("value", [5, [], {}, {"base64": ""}, {"base64": "/w="}, {"base64": "/w==", "x": 1},
                                   {"text": "k"}, {"base64": 5}])
def test_what_the_service_never_writes_is_no_record_bytes(value):
    assert not validator("/components/schemas/RecordBytes").is_valid(value)


def test_repeated_null_empty_and_binary_header_values_validate_as_a_domain_event():
    event = record_decode(Record(key=b"\xff", headers=[("n", None), ("e", b""), ("r", None), ("r", b"\xff")]))
    assert event["headers"] == {"n": None, "e": "", "r": [None, {"base64": "/w=="}]}
    assert message_of({"id": token_encode({("t", 0): 1})}, event) == ["domainEvent"]


# --- frames of a real stream --------------------------------------------------------------


def blocks_of(body: bytes) -> list[tuple[dict[str, Any], Any]]:
    """The SSE frames of a body: (its fields other than data, its data as JSON or None)."""
    frames = []
    for block in body.decode().split("\n\n"):
        if not block:
            continue
        fields: dict[str, Any] = {}
        data = None
        for line in block.split("\n"):
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "":
                fields["comment"] = value
            elif name == "data":
                data = json.loads(value)
            else:
                fields[name] = int(value) if name == "retry" else value
        frames.append((fields, data))
    return frames


def message_of(fields: dict[str, Any], data: Any) -> list[str]:
    """The stream messages of the document that this frame validates against."""
    return [
        name for name in sorted(STREAM_MESSAGES)
        if validator(f"/components/messages/{name}/headers").is_valid(fields)
        and validator(f"/components/messages/{name}/payload").is_valid(data)
    ]


def hostile_records() -> list[list[ForeignRecord]]:
    """One record of every value_format, each in a Kafka record batch of its own."""
    return [[record] for record in [
        ForeignRecord(b'{"type":"deal.won","n":5}', key=b"deal-1", headers=[("h", b"v"), ("h", b"w")]),
        ForeignRecord(b"plain text, not JSON", key=b"\xff\xfe"),
        ForeignRecord(b"\xff\x00binary", headers=[("bin", b"\xff")]),
        ForeignRecord(None, key=b"tombstone"),
        ForeignRecord(b"{}", headers=[(RawHeaderName(b"\xff\xfe-name"), b"v")]),
    ]]


async def body_until_server_ends(port: int, path: str, headers: dict[str, str] | None = None) -> bytes:
    connection = await SseConnection.open("127.0.0.1", port, path, headers)
    assert connection.status == 200
    assert connection.headers["content-type"] == "text/event-stream"
    assert connection.headers["cache-control"] == "no-cache"
    assert connection.headers["x-accel-buffering"] == "no"
    while not connection.ended:
        connection.feed(await asyncio.wait_for(connection.read_raw(), 30))
    return connection.raw_body


async def test_frames_of_a_real_stream_validate_against_the_document(stack, kafka, topic):
    stack.env.update(SSE_MAX_LIFETIME="3", SSE_HEARTBEAT_INTERVAL="0.5")
    stack.consumer()
    daphne, port = stack.daphne()
    stack.wait_ready(port)
    # The same document, as the service serves it.
    assert http_get(port, "/asyncapi.yaml") == (200, DOCUMENT_PATH.read_bytes())
    assert http_get(port, "/")[1]["asyncapi"] == "/asyncapi.yaml"
    await asyncio.to_thread(foreign_produce, kafka.bootstrap, topic, hostile_records())

    bodies = [await body_until_server_ends(port, "/crm-events?from=earliest")]  # ends by lifetime
    first_id = next(f["id"] for f, data in blocks_of(bodies[0]) if data and data["kind"] == "connected")
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka.bootstrap)
    await admin.start()
    try:
        await admin.delete_records({TopicPartition(topic, 0): RecordsToDelete(before_offset=2)})
    finally:
        await admin.close()
    bodies.append(await body_until_server_ends(port, "/crm-events", {"Last-Event-ID": first_id}))
    future = token_encode({(topic, 0): 2, (topic, 1): 1000, (topic, 2): 0})
    bodies.append(await body_until_server_ends(port, f"/crm-events?last_event_id={future}"))
    shutdown = asyncio.create_task(body_until_server_ends(port, "/crm-events"))
    await async_wait_until(lambda: metric_value(metrics_text(port), "aetherlink_sse_streams_connected") >= 1,
                           timeout=10, what="the stream the shutdown ends")
    await asyncio.to_thread(daphne.stop)
    bodies.append(await shutdown)

    frames = [frame for body in bodies for frame in blocks_of(body)]
    matched = Counter()
    for fields, data in frames:
        names = message_of(fields, data)
        assert len(names) == 1, f"frame {fields} {data} matches {names or 'no message'}"
        matched[names[0]] += 1
    assert set(matched) == STREAM_MESSAGES, matched
    payloads = [data for _, data in frames if data]
    # The registry's formats: tests/integration/test_schema_registry_stream.py (against this document too).
    formats = {p["value_format"] for p in payloads if p["kind"] == "domain_event"}
    assert formats == VALUE_FORMATS - REGISTRY_FORMATS
    assert {p["reason"] for p in payloads if p["kind"] == "gap"} == {"retention", "reset"}
    assert {p["reason"] for p in payloads if p["kind"] == "reconnect"} == {"lifetime", "shutdown"}


def token(subject: str, **claims: Any) -> dict[str, str]:
    claims = {"sub": subject, "exp": int(time.time()) + 600, **claims}
    encoded = jwt.encode(claims, JWT_KEY, algorithm="HS256")
    return {"Authorization": f"Bearer {encoded}"}


def refusal_message(status: int, headers: dict[str, str], body: Any) -> list[str]:
    """The refusal messages of the document that this answer validates against."""
    lower = {name.lower(): value for name, value in headers.items()}
    names = ("Content-Type", "Retry-After", "Cache-Control", "Allow")
    kept = {name: lower[name.lower()] for name in names if name.lower() in lower}
    return [
        name for name in ERROR_STATUSES
        if DOCUMENT["components"]["messages"][name]["bindings"]["http"]["statusCode"] == status
        and validator(f"/components/messages/{name}/bindings/http/headers").is_valid(kept)
        and validator(f"/components/messages/{name}/payload").is_valid(body)
    ]


async def test_refusals_validate_against_the_document(stack, kafka, topic):
    stack.env.update(
        SSE_AUTH_MODE="jwt", SSE_JWT_KEY=JWT_KEY, SSE_MAX_STREAMS="2", SSE_MAX_STREAMS_PER_SUBJECT="1"
    )
    stack.consumer()
    _, port = stack.daphne()
    stack.wait_ready(port)
    too_many = "&".join(f"kind=k{i}" for i in range(1001))
    held = [await SseConnection.open("127.0.0.1", port, "/crm-events", token("a"))]
    cases = [
        ("/crm-events?colour=red", token("a"), 400),
        (f"/crm-events?{too_many}", token("a"), 400),  # Django's own 400
        ("/crm-events", {}, 401),
        ("/crm-events", {"Authorization": "Basic x"}, 401),
        ("/crm-events", token("a", grant={"where": []}), 401),  # a grant that is none: `detail`
        ("/crm-events", token("a", grant="tenant_id:acme"), 401),
        ("/crm-events", token("a", topics=["not-served"]), 403),
        ("/crm-events", token("a"), 429),
    ]
    answers = [await asyncio.to_thread(raw_get, port, path, headers) for path, headers, _ in cases]
    held.append(await SseConnection.open("127.0.0.1", port, "/crm-events", token("b")))
    answers.append(await asyncio.to_thread(raw_get, port, "/crm-events", token("c")))
    cases.append(("/crm-events", token("c"), 503))
    for connection in held:
        connection.close()
    # Refused before any credentials are looked at: a method, and heads over the server's limits.
    for method, path, headers, status in [
        ("POST", "/crm-events", {}, 405),
        ("GET", "/crm-events?kind=" + "k" * 40_000, {}, 414),
        ("GET", "/crm-events", {"Cookie": "c=" + "x" * 40_000}, 431),
    ]:
        answers.append(await asyncio.to_thread(raw_get, port, path, headers, method))
        cases.append((path, headers, status))
    for (path, _, status), (got, headers, body) in zip(cases, answers, strict=True):
        assert got == status, (path[:60], got, body)
        names = refusal_message(got, headers, body)
        assert len(names) == 1, f"{status} {headers} {body} matches {names or 'no message'}"


def raw_get(
    port: int, path: str, headers: dict[str, str], method: str = "GET"
) -> tuple[int, dict[str, str], Any]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request(method, path, headers=headers)
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), json.loads(response.read())
    finally:
        connection.close()
