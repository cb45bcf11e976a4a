"""Requests against a real Daphne: several topics, topic selection, and the fuzzed request surface."""

from __future__ import annotations

import asyncio
import json
import socket
import time
import uuid
from dataclasses import dataclass
from urllib.parse import quote, quote_from_bytes

import jwt
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from crm_events.core.tokens import token_encode
from tests.integration.conftest import produce, topic_create
from tests.support.processes import async_wait_until, http_get
from tests.support.resume_ids import id_positions
from tests.support.sse_client import SseConnection

PARAMETERS = ["topic", "kind", "key", "partition", "where", "from", "since", "offset", "last_event_id", "x"]


def domain(events) -> list[dict]:
    return [e.json() for e in events if e.data and e.event is None and '"domain_event"' in e.data]


async def test_topic_selection_and_tokens_cover_only_the_selected_topics(stack, kafka, topic):
    audit = f"crm-audit-{uuid.uuid4().hex[:8]}"
    await topic_create(kafka.bootstrap, audit, partitions=2)
    stack.env["KAFKA_TOPICS"] = f"{topic},{audit}"
    stack.consumer()
    _, port = stack.daphne()
    stack.wait_ready(port)
    both = await SseConnection.open("127.0.0.1", port, "/crm-events")
    only_audit = await SseConnection.open("127.0.0.1", port, f"/crm-events?topic={audit}")
    for connection in (both, only_audit):
        await connection.events_until(lambda e: len(e) >= 2, timeout=10)
    value = json.dumps({"type": "deal.won"}).encode()
    await produce(kafka.bootstrap, topic, [value] * 3, partitions=[0, 1, 2])
    await produce(kafka.bootstrap, audit, [value] * 2, partitions=[0, 1])
    await both.events_until(lambda e: len(domain(e)) >= 5, timeout=20)
    await only_audit.events_until(lambda e: len(domain(e)) >= 2, timeout=20)
    both.close()
    only_audit.close()
    assert sorted(e["topic"] for e in domain(both.parser.events)) == sorted([topic] * 3 + [audit] * 2)
    assert [e["topic"] for e in domain(only_audit.parser.events)] == [audit, audit]
    # Each stream's id stands for one record read in every partition of its topics.
    audit_partitions = [(audit, 0), (audit, 1)]
    all_partitions = [(topic, 0), (topic, 1), (topic, 2), *audit_partitions]
    only_audit_at = await id_positions(only_audit.parser.last_id, audit_partitions, env=stack.env)
    assert only_audit_at == dict.fromkeys(audit_partitions, 1)
    both_at = await id_positions(both.parser.last_id, all_partitions, env=stack.env)
    assert both_at == dict.fromkeys(all_partitions, 1)


# --- The whole request surface, fuzzed: query, Last-Event-ID, Authorization and Cookie -----------

DEADLINE = 10.0  # seconds for a whole answer: a 4xx body, or a 200 stream's first frame
KEY = "request-fuzz-key-" + uuid.uuid4().hex + uuid.uuid4().hex  # HS256 secret of >= 32 bytes
COOKIE = "crm_token"
# Printable latin-1 without CR/LF (those would frame another request): any header value a client can send.
header_text = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"), max_size=80
)


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes


def exchange(port: int, target: str, headers: dict[str, str]) -> Answer:
    """One raw HTTP/1.1 request; the whole 4xx answer, or a 200 up to its first frame, in DEADLINE.

    A stream that answers 200 but never sends its `connected` (or `reconnect`) frame is a hang,
    and fails here with a timeout.
    """
    deadline = time.monotonic() + DEADLINE
    lines = [f"GET {target} HTTP/1.1", "Host: 127.0.0.1", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    with socket.create_connection(("127.0.0.1", port), timeout=DEADLINE) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        data = b""
        while not _complete(data):
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    answer_headers = {n.strip().lower(): v.strip() for n, _, v in (h.partition(":") for h in header_lines)}
    if answer_headers.get("transfer-encoding") == "chunked":
        body = _dechunk(body)
    return Answer(int(status_line.split()[1]), answer_headers, body)


def _complete(data: bytes) -> bool:
    """A 200 is complete at its first frame; anything else when the server closes (Connection: close)."""
    if not data.startswith(b"HTTP/1.1 200 "):
        return False
    return b'"kind":"connected"' in data or b'"kind":"reconnect"' in data


def _dechunk(body: bytes) -> bytes:
    decoded = b""
    while body:
        size_line, _, body = body.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        decoded, body = decoded + body[:size], body[size + 2:]
    return decoded


def answer_check(answer: Answer, request: object, headers: dict[str, str]) -> None:
    """200, or a 4xx whose body is the API's JSON error shape; never a 5xx, never HTML (Daphne's
    own protocol-level refusals, such as a header byte RFC 9110 forbids, included: the server's
    request class answers them in the same shape)."""
    if answer.status == 200:
        assert answer.headers["content-type"].startswith("text/event-stream"), request
        return
    assert 400 <= answer.status < 500, (answer.status, answer.body[:300], request)
    assert answer.headers.get("content-type") == "application/json", (answer.headers, request)
    body = json.loads(answer.body)
    assert body["ok"] is False and isinstance(body["error"], str), (body, request)
    assert isinstance(body["code"], str) and body["code"], (body, request)


class _Absent:
    def __repr__(self) -> str:
        return "ABSENT"


ABSENT = _Absent()
odd_json = st.one_of(
    st.none(), st.booleans(), st.integers(), st.text(max_size=8),
    st.lists(st.none() | st.integers() | st.text(max_size=6) | st.lists(st.text(max_size=3), max_size=2),
             max_size=3),
)


def signed_token(claims: dict, key: str = KEY) -> str:
    return jwt.encode({name: value for name, value in claims.items() if value is not ABSENT}, key, "HS256")


def surface(topic: str) -> dict[str, st.SearchStrategy]:
    """Strategies for every part of a request a client controls, around this test's topic."""
    names = st.sampled_from(PARAMETERS + ["canary", "token", "access_token"]) | st.text(max_size=8)
    values = st.text(max_size=40) | st.sampled_from(
        [topic, "²", "١", "0:²", "9" * 25, "1969-12-31T23:59:59Z", "items.²:x", f"{topic}/0:1", "earliest"]
    )
    pairs = st.lists(st.tuples(names, values), max_size=6).map(
        lambda items: "&".join(f"{quote(n)}={quote(v)}" for n, v in items))
    # Raw text, with `%`, `&`, `=` and `+` left as they are: broken escapes and odd separators.
    raw = st.text(max_size=120).map(lambda text: quote(text, safe="%&=+;")) | st.binary(max_size=60).map(
        lambda data: quote_from_bytes(data, safe="&="))
    claims = st.fixed_dictionaries({
        "sub": st.just("ui") | st.just(ABSENT) | odd_json,
        "exp": st.sampled_from([int(time.time()) + 600, int(time.time()) - 600, ABSENT]),
        "topics": st.just(ABSENT) | st.lists(st.sampled_from([topic, "other", ""]), max_size=3) | odd_json,
        "kinds": st.just(ABSENT) | st.lists(st.sampled_from(["deal", "deal.won", ""]), max_size=2) | odd_json,
    })
    tokens = st.builds(signed_token, claims, st.sampled_from([KEY, KEY[::-1]]))
    resume = st.builds(
        lambda t, p, o: token_encode({(t, p): o}), st.sampled_from([topic, "other"]), st.integers(0, 5),
        st.integers(0, 10**12),
    )
    return {
        "query": pairs | raw,
        "last_event_id": st.none() | header_text | resume,
        "authorization": st.none() | header_text | tokens.map("Bearer ".__add__)
        | header_text.map("Bearer ".__add__),
        "cookie": st.none() | header_text | tokens.map(f"{COOKIE}=".__add__)
        | st.builds(lambda junk, t: f"{junk}; {COOKIE}={t}", header_text, tokens),
    }


def test_any_parameters_or_token_get_200_or_4xx_never_5xx(stack, topic):
    """Every request, in `none` and in `jwt` mode, gets 200 or a 4xx JSON error in time."""
    stack.consumer()
    _, open_port = stack.daphne("daphne-none")
    stack.env.update(SSE_AUTH_MODE="jwt", SSE_JWT_KEY=KEY, SSE_JWT_COOKIE=COOKIE, SSE_JWT_LEEWAY="0")
    _, jwt_port = stack.daphne("daphne-jwt")
    for port in (open_port, jwt_port):
        stack.wait_ready(port)
    good = signed_token({"sub": "ui", "exp": int(time.time()) + 600})
    empty_topics = signed_token({"sub": "ui", "exp": int(time.time()) + 600, "topics": []})
    strategies = surface(topic)

    # Found on a fresh clone: `²` passed str.isdigit(), then int() raised, a 500.
    @example(jwt_mode=False, query="partition=%C2%B2", last_event_id=None, authorization=None, cookie=None)
    @example(jwt_mode=True, query="offset=0:%C2%B2", last_event_id=None, authorization=f"Bearer {good}",
             cookie=None)
    @example(jwt_mode=False, query="since=9999999999999999999", last_event_id=None, authorization=None,
             cookie=None)
    @example(jwt_mode=False, query="since=1969-12-31T23:59:59Z", last_event_id=None, authorization=None,
             cookie=None)
    # A 200 that never answered (IndexError inside the response), now a 403.
    @example(jwt_mode=True, query="", last_event_id=None, authorization=None,
             cookie=f"{COOKIE}={empty_topics}")
    # Daphne's own refusal of a forbidden header byte: an HTML 400 once, JSON now (JsonErrorRequest).
    @example(jwt_mode=False, query="", last_event_id=None, authorization=None, cookie="\x85")
    # Django's own HTML 400 page (TooManyFieldsSent), now JSON.
    @example(jwt_mode=False, query="&".join(["kind=a"] * 1001), last_event_id=None, authorization=None,
             cookie=None)
    @settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
    @given(jwt_mode=st.booleans(), **strategies)
    def check(jwt_mode, query, last_event_id, authorization, cookie):
        headers = {name: value for name, value in (
            ("Last-Event-ID", last_event_id), ("Authorization", authorization), ("Cookie", cookie),
        ) if value is not None}
        answer = exchange(jwt_port if jwt_mode else open_port, f"/crm-events?{query}", headers)
        answer_check(answer, (jwt_mode, query, headers), headers)

    check()
    # Every refused or dropped stream was released: nothing leaked, in either process.
    for port in (open_port, jwt_port):
        assert asyncio.run(_streams_after_drain(port)) == 0


async def _streams_after_drain(port: int) -> int:
    await async_wait_until(lambda: http_get(port, "/readyz")[1]["streams"] == 0, timeout=30, what="drain")
    return http_get(port, "/readyz")[1]["streams"]
