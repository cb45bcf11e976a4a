"""The hub's index selects exactly the streams whose filter matches an event: checked against the
one definition of a match (`GuardedFilter.matches`, the one replays use), for random audiences."""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st

from crm_events.access.auth import Principal
from crm_events.access.grants import grant_parse
from crm_events.core.canary import CANARY_HEADER, CANARY_TYPE, is_canary
from crm_events.core.filters import EventFilter, FieldMatch
from crm_events.fanout.matching import SubscriberIndex
from crm_events.streams.guard import GuardedFilter
from tests.support.grant_strategies import grant_objects
from tests.support.payloads import domain_payload

TOPICS = ("a", "b")
KEYS = ("k1", "k2", "k3")
# Binary keys as events carry them, and as filters hold them (`key_form`): never equal to text.
BINARY_KEYS = ({"base64": "/w=="}, {"base64": "azE="})
KEY_FORMS = (*KEYS, ("base64", "/w=="), ("base64", "azE="))
KINDS = ("deal", "deal.won", "deal.won.big", "ticket", "ticket.opened", "aetherlink")
PATHS = (("deal", "stage"), ("owner",), ("items", "0", "sku"))
TEXTS = ("won", "lost", "ana", "bo", "A1", "7", "true", "null")


@dataclass(eq=False)
class Stream:
    topics: tuple[str, ...]
    event_filter: GuardedFilter


def small_sets(values, max_size=2):
    return st.frozensets(st.sampled_from(values), max_size=max_size)


filters = st.builds(
    EventFilter, kinds=small_sets(KINDS), keys=small_sets(KEY_FORMS), partitions=small_sets((0, 1, 2)),
    fields=st.lists(st.builds(FieldMatch, path=st.sampled_from(PATHS), expected=st.sampled_from(TEXTS)),
                    max_size=2).map(tuple),
)
principals = st.builds(
    Principal, subject=st.just("jwt:x"),
    allowed_topics=st.none() | small_sets(TOPICS), allowed_kinds=st.none() | small_sets(KINDS),
    grant=st.none() | grant_objects.map(grant_parse),  # indexed by the filter it narrows the client's to
)
streams = st.builds(
    Stream, topics=st.lists(st.sampled_from(TOPICS), min_size=1, max_size=2, unique=True).map(tuple),
    event_filter=st.builds(GuardedFilter, inner=filters, principal=principals, show_canary=st.booleans()),
)
scalars = st.sampled_from(["won", "lost", "ana", "bo", "A1", 7, 7.0, True, None, [], {}])
values = st.fixed_dictionaries({}, optional={
    "deal": st.fixed_dictionaries({}, optional={"stage": scalars}), "owner": scalars,
    "items": st.lists(st.fixed_dictionaries({}, optional={"sku": scalars}), max_size=2),
}) | scalars


@st.composite
def events(draw) -> dict:
    canary = draw(st.booleans()) and draw(st.booleans())
    event_type = CANARY_TYPE if canary else draw(st.none() | st.sampled_from(KINDS + ("deal.lost", "dealer")))
    return domain_payload(
        topic=draw(st.sampled_from(TOPICS)), partition=draw(st.sampled_from((0, 1, 2))),
        key=draw(st.none() | st.sampled_from(KEYS + BINARY_KEYS)), type_=event_type, value=draw(values),
        headers={CANARY_HEADER: "1"} if canary else {},
    )


@settings(max_examples=400)
@given(audience=st.lists(streams, max_size=12), stream_events=st.lists(events(), min_size=1, max_size=5),
       leaving=st.sets(st.integers(0, 11)))
def test_the_index_selects_exactly_the_streams_whose_filter_matches(audience, stream_events, leaving):
    index = SubscriberIndex()
    for stream in audience:
        index.add(stream)
    for i in sorted(leaving):  # some leave again: the index forgets them cleanly
        if i < len(audience):
            index.discard(audience[i])
    staying = [s for i, s in enumerate(audience) if i not in leaving]
    for event in stream_events:
        selected = list(index.matching(event, canary=is_canary(event)))
        owed = [s for s in staying if event["topic"] in s.topics and s.event_filter.matches(event)]
        assert len(selected) == len(set(selected)), "a stream selected twice would get the event twice"
        assert set(selected) == set(owed)
    for stream in staying:
        index.discard(stream)
    assert len(index) == 0 and index.topics == {}, "nothing left behind"
