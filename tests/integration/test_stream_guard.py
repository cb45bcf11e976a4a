"""`/crm-events` on a real Daphne with SSE_AUTH_MODE=jwt: 401, 403, smuggled resume ids, 429, expiry."""

from __future__ import annotations

import asyncio
import json
import time
import uuid

import jwt
import pytest

from crm_events.access import auth, limits
from crm_events.core.tokens import token_encode
from tests.integration.conftest import json_values, produce, topic_create
from tests.support.processes import http_get
from tests.support.resume_ids import id_positions
from tests.support.sse_client import SseConnection

KEY = "stream-guard-key-" + uuid.uuid4().hex + uuid.uuid4().hex


def bearer(
    topics: list[str] | None = None, *, subject: str = "ui", ttl: float = 600, kinds: list[str] | None = None
) -> dict[str, str]:
    claims = {"sub": subject, "exp": int(time.time() + ttl)}
    if topics is not None:
        claims["topics"] = topics
    if kinds is not None:
        claims["kinds"] = kinds
    return {"Authorization": "Bearer " + jwt.encode(claims, KEY, algorithm="HS256")}


@pytest.fixture
def guarded(stack, kafka, topic):
    """A Daphne serving `topic` and `other`, with JWT auth and one stream per subject."""
    other = f"{topic}-other"
    asyncio.run(topic_create(kafka.bootstrap, other))
    stack.env.update(
        KAFKA_TOPICS=f"{topic},{other}", SSE_AUTH_MODE="jwt", SSE_JWT_KEY=KEY, SSE_JWT_LEEWAY="0",
        SSE_MAX_STREAMS_PER_SUBJECT="1", SSE_LIMIT_RETRY_AFTER="9", SSE_HEARTBEAT_INTERVAL="0.5",
    )
    stack.consumer()
    _, port = stack.daphne()
    stack.wait_ready(port)
    return port, topic, other


async def refused(port: int, path: str, headers: dict[str, str] | None = None) -> SseConnection:
    """A request expected to be answered with a JSON error (read to the end, with a deadline)."""
    connection = await SseConnection.open("127.0.0.1", port, path, headers={**(headers or {}),
                                                                          "Connection": "close"})
    body = b""
    async with asyncio.timeout(10):
        while chunk := await connection.reader.read(65536):
            body += chunk
    connection.close()
    connection.body = json.loads(body.split(b"\r\n")[1] if connection.chunked else body)
    return connection


async def test_credentials_topics_and_resume_ids_are_checked_before_streaming(guarded):
    port, topic, other = guarded
    missing = await refused(port, "/crm-events")
    assert (missing.status, missing.headers["www-authenticate"]) == (401, 'Bearer realm="crm-events"')
    assert missing.body == {"ok": False, "error": auth.CREDENTIALS_MISSING, "code": "unauthorized",
                            "reason": "missing"}
    expired = await refused(port, "/crm-events", bearer(ttl=-60))
    assert (expired.status, expired.body["error"]) == (401, auth.TOKEN_EXPIRED)
    wrong_key = {"Authorization": "Bearer " + jwt.encode({"sub": "x", "exp": 2**40}, "k" * 40, "HS256")}
    assert (await refused(port, "/crm-events", wrong_key)).status == 401

    forbidden = await refused(port, f"/crm-events?topic={other}", bearer([topic]))
    assert (forbidden.status, forbidden.body) == (403, {
        "ok": False, "error": auth.TOPICS_FORBIDDEN, "code": "forbidden", "topics": [other]})
    # A resume id naming a forbidden topic is refused the same way, whatever `topic=` says.
    smuggled = token_encode({(topic, 0): 0, (other, 0): 0})
    for headers in ({"Last-Event-ID": smuggled}, {}):
        path = "/crm-events" + ("" if headers else f"?last_event_id={smuggled}")
        resumed = await refused(port, path, {**bearer([topic]), **headers})
        assert (resumed.status, resumed.body["topics"]) == (403, [other])


async def test_a_restricted_token_streams_its_topics_only_and_one_stream_per_subject(guarded, kafka):
    port, topic, other = guarded
    connection = await SseConnection.open("127.0.0.1", port, "/crm-events", headers=bearer([topic]))
    try:
        await connection.events_until(lambda events: len(events) >= 2, timeout=15)
        assert connection.status == 200
        assert connection.parser.events[1].json()["topics"] == [topic]

        second = await refused(port, "/crm-events", bearer([topic]))
        assert (second.status, second.headers["retry-after"], second.body["error"]) == (
            429, "9", limits.SUBJECT_FULL)

        await produce(kafka.bootstrap, other, json_values(3, where="other"), partitions=[0] * 3)
        await produce(kafka.bootstrap, topic, json_values(3), partitions=[0] * 3)
        await connection.events_until(lambda events: len(domain(events)) >= 3, timeout=30)
        assert [(e["topic"], e["value"]["seq"]) for e in domain(connection.parser.events)] == [
            (topic, 0), (topic, 1), (topic, 2)]
        status, metrics_text = http_get(port, "/metrics")
        assert status == 200 and b"aetherlink_sse_streams_connected 1.0" in metrics_text
    finally:
        connection.close()


async def test_empty_claims_grant_nothing(guarded, kafka, stack):
    port, topic, other = guarded
    # No readable topic: refused at once, not a 200 stream that never answers.
    for topics in ([], ["not-served-here"]):
        empty = await refused(port, "/crm-events", bearer(topics, subject=f"empty-{len(topics)}"))
        assert (empty.status, empty.body) == (403, {
            "ok": False, "error": auth.NO_TOPIC_READABLE, "code": "forbidden"})
    nothing = await SseConnection.open("127.0.0.1", port, "/crm-events", bearer(kinds=[], subject="none"))
    everything = await SseConnection.open("127.0.0.1", port, "/crm-events", bearer(subject="all"))
    try:
        for connection in (nothing, everything):
            await connection.events_until(lambda events: len(events) >= 2, timeout=15)
        await produce(kafka.bootstrap, topic, json_values(3), partitions=[0] * 3)
        await everything.events_until(lambda events: len(domain(events)) >= 3, timeout=30)
        # A heartbeat's id is the stream's position: once it is past the three events, they were skipped.
        async def position() -> int:
            at = await id_positions(nothing.parser.last_id, [(topic, 0)], env=stack.env, served=[other])
            return at[(topic, 0)]

        deadline = time.monotonic() + 30
        while (seen := nothing.parser.last_id) and await position() < 3:
            assert time.monotonic() < deadline, "the stream's id never moved past the skipped events"
            await nothing.events_until(lambda _events, seen=seen: nothing.parser.last_id != seen, timeout=10)
        assert domain(nothing.parser.events) == []
    finally:
        nothing.close()
        everything.close()


async def test_the_stream_ends_at_token_expiry_with_its_resume_id(guarded):
    port, topic, _ = guarded
    connection = await SseConnection.open("127.0.0.1", port, "/crm-events", headers=bearer(ttl=3))
    await connection.events_until(lambda _: connection.ended, timeout=20)
    connection.close()
    last = connection.parser.events[-1]
    assert last.json() == {"kind": "reconnect", "reason": "auth_expired"}
    assert last.id  # the client resumes with a fresh token from here, missing nothing


def domain(events):
    return [e.json() for e in events if e.data and e.json().get("kind") == "domain_event"]
