"""Requests against a real Daphne: several topics, topic selection, and fuzzed parameters."""

from __future__ import annotations

import asyncio
import json
import socket
import uuid
from urllib.parse import quote

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crm_events.resume import token_decode
from tests.integration.conftest import produce, topic_create
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
    audit_positions = token_decode(only_audit.parser.last_id, (topic, audit))
    assert {t for t, _ in audit_positions} == {audit}
    assert set(token_decode(both.parser.last_id, (topic, audit))) == {
        (topic, 0), (topic, 1), (topic, 2), (audit, 0), (audit, 1),
    }


def status_of(port: int, path: str, headers: dict[str, str]) -> int:
    """Send one raw request and read only the status line: a 200 stream is then dropped."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        lines = [f"GET {path} HTTP/1.1", "Host: 127.0.0.1"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        status_line = sock.makefile("rb").readline()
    return int(status_line.split()[1])


header_text = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=80
)


def test_any_parameters_or_token_get_200_or_4xx_never_5xx(stack):
    stack.consumer()
    _, port = stack.daphne()
    stack.wait_ready(port)

    @settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
    @given(
        pairs=st.lists(st.tuples(st.sampled_from(PARAMETERS), st.text(max_size=40)), max_size=5),
        last_event_id=st.one_of(st.none(), header_text),
    )
    def check(pairs, last_event_id):
        query = "&".join(f"{name}={quote(value)}" for name, value in pairs)
        headers = {"Last-Event-ID": last_event_id} if last_event_id is not None else {}
        status = status_of(port, f"/crm-events?{query}", headers)
        assert status == 200 or 400 <= status < 500, (query, last_event_id, status)

    check()
    # Every refused or dropped stream was released: nothing leaked.
    assert asyncio.run(_streams_after_drain(port)) == 0


async def _streams_after_drain(port: int) -> int:
    from tests.support.processes import async_wait_until, http_get

    await async_wait_until(lambda: http_get(port, "/readyz")[1]["streams"] == 0, timeout=30, what="drain")
    return http_get(port, "/readyz")[1]["streams"]
