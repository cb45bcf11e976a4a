"""Row-level grants on a real Daphne, Kafka and Redis: a JWT's grant limits its stream live and
on resume whatever the client asks (a grant made from an ordinary claim too), and a stream whose
token expires ends with `auth_expired` and its id, from which a fresh token resumes with nothing
lost and nothing twice."""

from __future__ import annotations

import json
import time
import uuid

import jwt
import pytest

from tests.integration.conftest import produce
from tests.integration.test_stream_guard import refused
from tests.support.resume_ids import id_positions
from tests.support.sse_client import SseConnection

KEY = "stream-grants-key-" + uuid.uuid4().hex + uuid.uuid4().hex
TENANTS = ("acme", "beta", "gamma")
ACME = {"where": ["tenant_id:acme"]}


def bearer(subject: str, grant: dict | None = None, *, ttl: float = 600) -> dict[str, str]:
    claims = {"sub": subject, "exp": int(time.time() + ttl), **({"grant": grant} if grant else {})}
    return {"Authorization": "Bearer " + jwt.encode(claims, KEY, algorithm="HS256")}


@pytest.fixture
def granted(stack, topic):
    stack.env.update(SSE_AUTH_MODE="jwt", SSE_JWT_KEY=KEY, SSE_JWT_LEEWAY="0", SSE_HEARTBEAT_INTERVAL="0.5")
    stack.consumer()
    _, port = stack.daphne()
    stack.wait_ready(port)
    return port


def deals(start: int, count: int) -> list[bytes]:
    """Deals of the three tenants in turn, numbered from `start`."""
    return [json.dumps({"type": "deal.updated", "seq": i, "tenant_id": TENANTS[i % 3]}).encode()
            for i in range(start, start + count)]


def ends_of(topic: str, positions: list[tuple[int, int]]) -> dict[tuple[str, int], int]:
    """Each partition's position after the records produced at `positions`."""
    return {(topic, p): max(o for q, o in positions if q == p) + 1 for p in range(3)}


def seqs(connection: SseConnection) -> list[int]:
    return [e.json()["value"]["seq"] for e in connection.parser.events
            if e.data and e.json().get("kind") == "domain_event"]


def acme(numbers) -> list[int]:
    return [n for n in numbers if TENANTS[n % 3] == "acme"]


async def open_stream(port: int, path: str, headers: dict[str, str]) -> SseConnection:
    connection = await SseConnection.open("127.0.0.1", port, path, headers)
    await connection.events_until(lambda events: any(e.data for e in events), timeout=20)  # `connected`
    assert connection.status == 200
    return connection


async def past(connection: SseConnection, ends: dict, env: dict, timeout: float = 30) -> None:
    """Wait until the stream's id (a heartbeat's, when it was given nothing) is past `ends`."""
    deadline = time.monotonic() + timeout
    while True:
        at = await id_positions(connection.parser.last_id, ends, env=env)
        if all(at[p] >= offset for p, offset in ends.items()):
            return
        assert time.monotonic() < deadline, f"the stream's id never passed {ends}: {at}"
        seen = connection.parser.last_id
        await connection.events_until(lambda _e, seen=seen: connection.parser.last_id != seen, timeout=10)


async def test_a_grant_limits_live_and_resumed_streams_whatever_the_client_asks(granted, stack, kafka, topic):
    port = granted
    wide = await open_stream(port, "/crm-events", bearer("wide"))
    own = await open_stream(port, "/crm-events", bearer("acme-1", ACME))
    # A client filter for another tenant is AND-ed with the grant: nothing, not beta's deals.
    sneaky = await open_stream(port, "/crm-events?where=tenant_id:beta", bearer("acme-2", ACME))
    try:
        positions = await produce(kafka.bootstrap, topic, deals(0, 12), partitions=[i % 3 for i in range(12)])
        ends = ends_of(topic, positions)
        await wide.events_until(lambda _: len(seqs(wide)) >= 12, timeout=30)
        await own.events_until(lambda _: len(seqs(own)) >= 4, timeout=30)
        await past(sneaky, ends, stack.env)
        assert sorted(seqs(wide)) == list(range(12))
        assert sorted(seqs(own)) == acme(range(12)) == [0, 3, 6, 9]
        assert seqs(sneaky) == []
        # An id given to the wide stream after its 5th event, resumed with the acme token: only
        # acme's deals after it, each once, though the id came from a stream that saw them all.
        given = [e for e in wide.parser.events if e.data and e.json().get("kind") == "domain_event"]
        seen = {e.json()["value"]["seq"] for e in given[:5]}
        headers = {**bearer("acme-3", ACME), "Last-Event-ID": given[4].id}
        resumed = await open_stream(port, "/crm-events", headers)
        try:
            await past(resumed, ends, stack.env)
            assert sorted(seqs(resumed)) == acme(n for n in range(12) if n not in seen)
        finally:
            resumed.close()
        # A grant that is no grant is refused before streaming, as a malformed claim is.
        broken = await refused(port, "/crm-events", bearer("acme-4", {"where": []}))
        assert (broken.status, broken.body["reason"]) == (401, "claim_malformed")
    finally:
        for connection in (wide, own, sneaky):
            connection.close()


async def test_a_stream_ends_at_expiry_and_a_fresh_token_resumes_exactly(granted, stack, kafka, topic):
    port = granted
    first = await open_stream(port, "/crm-events", bearer("acme-1", ACME, ttl=4))
    try:
        await produce(kafka.bootstrap, topic, deals(0, 9), partitions=[i % 3 for i in range(9)])
        await first.events_until(lambda _: first.ended, timeout=30)
    finally:
        first.close()
    assert first.ended, "the stream outlived its token"
    last = first.parser.events[-1]
    assert (last.json(), bool(last.id)) == ({"kind": "reconnect", "reason": "auth_expired"}, True)
    # Deals go on while the client fetches a fresh token; it resumes from the farewell's id.
    positions = await produce(kafka.bootstrap, topic, deals(9, 9), partitions=[i % 3 for i in range(9)])
    ends = ends_of(topic, positions)
    expired = await refused(port, "/crm-events", {**bearer("acme-1", ACME, ttl=-5), "Last-Event-ID": last.id})
    assert expired.status == 401
    second = await open_stream(port, "/crm-events", {**bearer("acme-1", ACME), "Last-Event-ID": last.id})
    try:
        await past(second, ends, stack.env)
    finally:
        second.close()
    # Nothing lost, nothing twice (partitions interleave as they come, so compared sorted).
    assert sorted(seqs(first) + seqs(second)) == acme(range(18))


@pytest.fixture
def templated(stack, topic):
    stack.env.update(SSE_AUTH_MODE="jwt", SSE_JWT_KEY=KEY, SSE_JWT_LEEWAY="0", SSE_HEARTBEAT_INTERVAL="0.5",
                     SSE_JWT_GRANT_TEMPLATE='{"where": ["tenant_id:{tenant}"]}')
    stack.consumer()
    _, port = stack.daphne()
    stack.wait_ready(port)
    return port


def signed(**claims) -> dict[str, str]:
    body = {"sub": "rep", "exp": int(time.time() + 600), **claims}
    return {"Authorization": "Bearer " + jwt.encode(body, KEY, algorithm="HS256")}


async def test_a_grant_made_from_an_ordinary_claim_limits_the_stream(templated, stack, kafka, topic):
    port = templated
    missing = await refused(port, "/crm-events", signed())
    assert (missing.status, missing.body["reason"], missing.body["claim"]) == (
        401, "claim_malformed", "tenant")
    carried = await refused(port, "/crm-events", signed(tenant="beta", grant={"kind": ["deal"]}))
    assert (carried.status, carried.body["claim"]) == (401, "grant")
    beta = await open_stream(port, "/crm-events", signed(tenant="beta"))
    try:
        positions = await produce(kafka.bootstrap, topic, deals(0, 9), partitions=[i % 3 for i in range(9)])
        await past(beta, ends_of(topic, positions), stack.env)
    finally:
        beta.close()
    assert sorted(seqs(beta)) == [n for n in range(9) if TENANTS[n % 3] == "beta"]
