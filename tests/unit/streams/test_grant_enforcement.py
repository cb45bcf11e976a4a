"""No stream ever receives an event outside its grant: live through the hub's index, and resumed
from any id, including one issued to a stream with a wider grant. Checked for random grants,
client filters, topic lists and events against the grant's meaning written out in
tests/support/grant_strategies.py, not against the code under test; and exactly: each event a
stream is owed arrives once."""

from __future__ import annotations

import json
from dataclasses import dataclass

from channels.layers import InMemoryChannelLayer
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from crm_events.access.auth import Principal
from crm_events.access.grants import grant_parse
from crm_events.core import messages as broadcast
from crm_events.core.canary import is_canary
from crm_events.core.filters import EventFilter
from crm_events.core.live_event import LiveEvent
from crm_events.core.tokens import token_decode
from crm_events.exceptions import StreamForbidden
from crm_events.fanout.hub import EventHub
from crm_events.fanout.subscriber import StreamSubscriber
from crm_events.streams.guard import GuardedFilter
from tests.support.grant_strategies import (
    PARTITIONS,
    TOPICS,
    client_filters,
    events,
    grant_admits,
    grants_of,
)
from tests.support.payloads import serving
from tests.support.transports import RecordingTransport, delivered


@dataclass(frozen=True)
class Ask:
    """One client: its credentials' grant (None: none), what it asks, and whether it shows canaries."""

    grant: dict[str, list[str]] | None
    event_filter: EventFilter
    topics: frozenset[str]
    show_canary: bool


# Mostly one or two conditions each, so that streams are owed events often enough to tell.
asks = st.builds(
    Ask, grant=st.none() | grants_of(2),
    event_filter=st.just(EventFilter()) | client_filters,
    topics=st.frozensets(st.sampled_from(TOPICS), max_size=3), show_canary=st.booleans(),
)


def opened(
    ask: Ask, positions: dict[tuple[str, int], int], resume_topics: frozenset[str] | set[str] = frozenset()
) -> StreamSubscriber | None:
    """The stream admission would open for `ask` (None: refused, as its 403 would be)."""
    principal = Principal("jwt:rep", grant=None if ask.grant is None else grant_parse(ask.grant))
    try:
        readable = principal.topics_readable(TOPICS)
        principal.topics_check(ask.topics | resume_topics)  # outside the grant: refused
    except StreamForbidden:
        return None
    topics = tuple(t for t in readable if t in ask.topics) or readable
    return StreamSubscriber(
        topics=topics, positions={p: o for p, o in positions.items() if p[0] in topics},
        event_filter=GuardedFilter(ask.event_filter, principal, show_canary=ask.show_canary),
        max_frames=10_000, transport=RecordingTransport(), chunk_bytes=1 << 20,
    )


def owed(ask: Ask, subscriber: StreamSubscriber, payload: dict) -> bool:
    """Whether this client should see this event: its grant, its topics, its filter, its canary choice."""
    return (
        (ask.grant is None or grant_admits(ask.grant, payload)) and payload["topic"] in subscriber.topics
        and ask.event_filter.matches(payload) and (ask.show_canary or not is_canary(payload))
    )


def received(subscriber: StreamSubscriber) -> list[tuple[str, dict]]:
    """(id, payload) of each domain event written to this client."""
    frames = subscriber.transport.take().split(b"\n\n")
    found = []
    for frame in filter(None, frames):
        fields = dict(line.split(b": ", 1) for line in frame.split(b"\n"))
        payload = json.loads(fields[b"data"])
        if payload.get("kind") == "domain_event":
            found.append((fields[b"id"].decode(), payload))
    return found


def numbered(payloads: list[dict], start: dict[tuple[str, int], int]) -> list[dict]:
    """The events at the next offsets of their partitions."""
    at = dict(start)
    out = []
    for payload in payloads:
        position = (payload["topic"], payload["partition"])
        out.append({**payload, "offset": at[position]})
        at[position] += 1
    return out


async def live(hub: EventHub, batch: list[dict]) -> None:
    items = [broadcast.record_item(p, prev=p["offset"], size=1) for p in batch]
    if items:
        await delivered(hub, broadcast.records_message(items))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(audience=st.lists(asks, max_size=6), resumer=asks, first=st.lists(events(), min_size=1, max_size=8),
       then=st.lists(events(), max_size=8), issuer=st.integers(0, 40))
async def test_no_stream_receives_an_event_outside_its_grant_live_or_resumed(
    audience, resumer, first, then, issuer
):
    start = {(t, p): 0 for t in TOPICS for p in PARTITIONS}
    hub = EventHub(InMemoryChannelLayer(), serving(*TOPICS))
    hub.positions.update(start)
    hub.positions_ready.set()
    wide = Ask(grant=None, event_filter=EventFilter(), topics=frozenset(), show_canary=True)
    streams = [(ask, s) for ask in (wide, *audience) if (s := opened(ask, start)) is not None]
    for _, subscriber in streams:
        hub.subscribe(subscriber)
    sent = numbered(first, start)
    await live(hub, sent)
    ids: list[str] = []
    for ask, subscriber in streams:
        got = received(subscriber)
        assert [p for _, p in got] == [p for p in sent if owed(ask, subscriber, p)]
        ids += [token for token, _ in got]
    if not ids:
        return
    # A client with other credentials resumes from an id another stream was given (its grant
    # perhaps wider): it catches up on the events after that id as a replay does (the same
    # `offer`: new to it and its filter matches), joins the hub, and more events come live.
    token = ids[issuer % len(ids)]
    resumed_at = {**start, **token_decode(token, TOPICS)}
    subscriber = opened(resumer, resumed_at, resume_topics={t for t, _ in token_decode(token, TOPICS)})
    if subscriber is None:
        return
    behind = [p for p in sent if p["offset"] >= resumed_at[(p["topic"], p["partition"])]]
    for payload in behind:
        subscriber.offer(LiveEvent(payload), hub)
    hub.subscribe(subscriber)
    assert subscriber in hub.index, "caught up: it joins the hub's index"
    more = numbered(then, dict(hub.positions))
    await live(hub, more)
    subscriber.flush()
    got = [p for _, p in received(subscriber)]
    assert got == [p for p in behind + more if owed(resumer, subscriber, p)]
    event("resumed with events" if got else "resumed")
