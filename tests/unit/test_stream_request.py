import contextlib

import pytest
from django.http import QueryDict
from hypothesis import given
from hypothesis import strategies as st

from crm_events.exceptions import StreamRequestError
from crm_events.filters import FieldMatch
from crm_events.resume import token_encode
from crm_events.stream_request import START_EARLIEST, since_parse, stream_request_parse

SERVED = ("aetherlink.events", "crm.audit")
AUDIT_TOKEN = token_encode({("crm.audit", 0): 3, ("crm.audit", 1): 4})
EVENTS_TOKEN = token_encode({("aetherlink.events", 2): 9})


def parse(query: str, last_event_id: str | None = None):
    return stream_request_parse(QueryDict(query), last_event_id=last_event_id, served=SERVED)


def test_defaults_serve_every_topic_from_latest():
    request = parse("")
    assert request.topics == SERVED
    assert request.start == "latest"
    assert request.event_filter.is_empty
    assert (request.since_ms, request.offsets, request.resume_token) == (None, {}, None)


def test_every_parameter():
    request = parse(
        "topic=crm.audit&kind=deal&kind=ticket.opened&key=k1&partition=2&where=deal.stage:won"
        f"&where=deal.amount:5000&from=earliest&offset=crm.audit/1:40&last_event_id={AUDIT_TOKEN}"
    )
    assert request.topics == ("crm.audit",)
    assert request.event_filter.kinds == {"deal", "ticket.opened"}
    assert request.event_filter.keys == {"k1"}
    assert request.event_filter.partitions == {2}
    assert request.event_filter.fields == (
        FieldMatch(("deal", "stage"), "won"), FieldMatch(("deal", "amount"), "5000"),
    )
    assert request.start == START_EARLIEST
    assert request.offsets == {("crm.audit", 1): 40}
    assert request.resume_token == AUDIT_TOKEN
    assert request.resume_positions == {("crm.audit", 0): 3, ("crm.audit", 1): 4}


def test_canaries_are_hidden_unless_asked_for():
    assert parse("").show_canary is False
    assert parse("canary=1").show_canary is True


def test_the_header_wins_over_the_query_token():
    request = parse(f"last_event_id={AUDIT_TOKEN}", last_event_id=EVENTS_TOKEN)
    assert request.resume_positions == {("aetherlink.events", 2): 9}


def test_a_token_must_fit_the_selected_topics():
    with pytest.raises(StreamRequestError, match="names a topic this stream does not serve"):
        parse(f"topic=aetherlink.events&last_event_id={AUDIT_TOKEN}")


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("colour=red", "unknown parameter 'colour'"),
        ("topic=nope", "unknown topic 'nope'; this service serves: aetherlink.events, crm.audit"),
        ("canary=yes", "canary must be 0 or 1, got 'yes'"),
        ("from=yesterday", "from must be 'latest' or 'earliest', got 'yesterday'"),
        ("from=latest&from=earliest", "from may be given once"),
        ("from=earliest&since=0", "give either from or since, not both"),
        ("partition=-1", "partition must be a non-negative integer, got '-1'"),
        ("partition=", "partition must not be empty"),
        ("where=novalue", "where must look like path.to.field:value, got 'novalue'"),
        ("where=a..b:1", "where must look like path.to.field:value, got 'a..b:1'"),
        ("since=last tuesday", "since must be ISO-8601"),
        ("offset=1:5", "offset '1:5' must name its topic: TOPIC/PARTITION:OFFSET"),
        ("offset=crm.audit/1", "offset must look like PARTITION:OFFSET, got 'crm.audit/1'"),
        ("topic=crm.audit&offset=aetherlink.events/0:1", "names a topic outside this stream"),
    ],
)
def test_bad_requests_say_what_is_wrong(query, message):
    with pytest.raises(StreamRequestError) as caught:
        parse(query)
    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("1764151200000", 1_764_151_200_000),
        ("2025-11-26T10:00:00Z", 1_764_151_200_000),
        ("2025-11-26T11:00:00+01:00", 1_764_151_200_000),
        ("2025-11-26T11:00:00 01:00", 1_764_151_200_000),  # '+' decoded to a space in a URL
        ("2025-11-26T10:00:00", 1_764_151_200_000),
    ],
)
def test_since_accepts_epoch_ms_and_iso_8601(text, ms):
    assert since_parse(text) == ms


@given(st.lists(st.tuples(st.text(max_size=20), st.text(max_size=40)), max_size=8))
def test_any_query_parses_or_fails_as_a_bad_request(pairs):
    query = QueryDict(mutable=True)
    for name, value in pairs:
        query.appendlist(name, value)
    with contextlib.suppress(StreamRequestError):
        stream_request_parse(query, last_event_id=None, served=SERVED)
