import json

import pytest
from django.http import QueryDict
from hypothesis import example, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from crm_events.core.filters import FieldMatch
from crm_events.core.positions import MAX_OFFSET
from crm_events.core.tokens import token_encode
from crm_events.exceptions import StreamRequestError
from crm_events.responses import error_response
from crm_events.streams import request as sr
from crm_events.streams.request import START_EARLIEST, StreamRequest, since_parse, stream_request_parse
from tests.support.payloads import domain_payload

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


def test_a_key_is_asked_for_as_text_or_as_bytes_in_either_base64_alphabet():
    request = parse("key=k1&key=base64:/w==&key_base64=/%2B8=&key_base64=_-8&key_base64=azI")
    assert request.event_filter.keys == {"k1", "base64:/w==", ("base64", "/+8="), "k2"}  # azI: b"k2"
    assert request.event_filter.matches(domain_payload(key={"base64": "/+8="}))
    assert request.event_filter.matches(domain_payload(key="k2"))
    assert not request.event_filter.matches(domain_payload(key={"base64": "/w=="}))
    assert not request.event_filter.matches(domain_payload(key=None))


def test_canaries_are_hidden_unless_asked_for():
    assert parse("").show_canary is False
    assert parse("canary=1").show_canary is True


def test_the_header_wins_over_the_query_token():
    request = parse(f"last_event_id={AUDIT_TOKEN}", last_event_id=EVENTS_TOKEN)
    assert request.resume_positions == {("aetherlink.events", 2): 9}


def test_a_token_must_fit_the_selected_topics():
    with pytest.raises(StreamRequestError, match="names a topic this stream does not serve"):
        parse(f"topic=aetherlink.events&last_event_id={AUDIT_TOKEN}")


ALLOWED = ", ".join(sorted(sr.REPEATABLE | sr.SINGLE))
PARTITION_MAX = sr.PARTITION_MAX


def integer_invalid(name: str, text: str, maximum: int = PARTITION_MAX) -> str:
    return sr.INTEGER_INVALID.format(name=name, maximum=maximum, text=text)


def since_range(text: str) -> str:
    return sr.SINCE_OUT_OF_RANGE.format(maximum=sr.SINCE_MAX_MS, text=text)


@pytest.mark.parametrize(
    ("query", "message", "parameter"),
    [
        ("colour=red", sr.PARAMETER_UNKNOWN.format(name="colour", allowed=ALLOWED), "colour"),
        ("topic=nope", "unknown topic 'nope'; this service serves: aetherlink.events, crm.audit", "topic"),
        ("canary=yes", "canary must be 0 or 1, got 'yes'", "canary"),
        ("from=yesterday", "from must be 'latest' or 'earliest', got 'yesterday'", "from"),
        ("from=latest&from=earliest", "from may be given once", "from"),
        ("from=earliest&since=0", "give either from or since, not both", "since"),
        ("partition=-1", integer_invalid("partition", "-1"), "partition"),
        ("partition=", "partition must not be empty", "partition"),
        # Unicode digits pass str.isdigit(): `²` then failed in int() (a 500), `١` was read as 1.
        ("partition=%C2%B2", integer_invalid("partition", "²"), "partition"),
        ("partition=%D9%A1", integer_invalid("partition", "١"), "partition"),
        ("partition=2147483648", integer_invalid("partition", "2147483648"), "partition"),
        ("key_base64=a", sr.KEY_BASE64_INVALID.format(text="a"), "key_base64"),
        ("key_base64=/w%3D%3D%3D", sr.KEY_BASE64_INVALID.format(text="/w==="), "key_base64"),
        ("key_base64=%2Bw_-", sr.KEY_BASE64_INVALID.format(text="+w_-"), "key_base64"),  # two alphabets
        ("key_base64=%C3%BF", sr.KEY_BASE64_INVALID.format(text="ÿ"), "key_base64"),
        ("where=novalue", "where must look like path.to.field:value, got 'novalue'", "where"),
        ("where=a..b:1", "where must look like path.to.field:value, got 'a..b:1'", "where"),
        ("since=last tuesday", sr.SINCE_INVALID.format(text="last tuesday"), "since"),
        ("since=%C2%B2", sr.SINCE_INVALID.format(text="²"), "since"),
        ("since=9999999999999999999", since_range("9999999999999999999"), "since"),
        ("since=1969-12-31T23:59:59.999Z", since_range("1969-12-31T23:59:59.999Z"), "since"),
        ("since=0001-01-01T00:00:00%2B01:00", since_range("0001-01-01T00:00:00+01:00"), "since"),
        ("offset=1:5", "offset '1:5' must name its topic: TOPIC/PARTITION:OFFSET", "offset"),
        ("offset=crm.audit/1", "offset must look like PARTITION:OFFSET, got 'crm.audit/1'", "offset"),
        ("topic=crm.audit&offset=aetherlink.events/0:1",
         "offset 'aetherlink.events/0:1' names a topic outside this stream", "offset"),
        ("topic=crm.audit&offset=0:%C2%B2", integer_invalid("offset", "²", MAX_OFFSET), "offset"),
        ("topic=crm.audit&offset=%C2%B2:0", integer_invalid("offset partition", "²"), "offset"),
        ("topic=crm.audit&offset=0:9223372036854775808",
         integer_invalid("offset", "9223372036854775808", MAX_OFFSET), "offset"),
        ("last_event_id=%C2%B2", None, "last_event_id"),
    ],
)
def test_bad_requests_say_what_is_wrong_and_name_the_parameter(query, message, parameter):
    with pytest.raises(StreamRequestError) as caught:
        parse(query)
    if message is not None:
        assert caught.value.message == message
    response = error_response(caught.value)
    assert response.status_code == 400
    assert json.loads(response.content) == {
        "ok": False, "error": caught.value.message, "code": "bad_request", "parameter": parameter,
    }


def test_a_bad_header_token_names_the_header():
    with pytest.raises(StreamRequestError) as caught:
        parse("", last_event_id="not-a-token")
    assert caught.value.details == {"parameter": "Last-Event-ID"}


def test_integers_at_their_bounds_and_with_leading_zeros():
    request = parse("topic=crm.audit&partition=2147483647&offset=0002:9223372036854775807")
    assert request.event_filter.partitions == {PARTITION_MAX}
    assert request.offsets == {("crm.audit", 2): MAX_OFFSET}
    assert parse("since=9223372036854775807").since_ms == sr.SINCE_MAX_MS
    assert parse("since=" + "0" * 30 + "5").since_ms == 5


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("1764151200000", 1_764_151_200_000),
        ("2025-11-26T10:00:00Z", 1_764_151_200_000),
        ("2025-11-26T11:00:00+01:00", 1_764_151_200_000),
        ("2025-11-26T11:00:00 01:00", 1_764_151_200_000),  # '+' decoded to a space in a URL
        ("2025-11-26T10:00:00", 1_764_151_200_000),
        ("2025-11-26T10:00:00.999999Z", 1_764_151_200_999),  # exact, no float rounding
        ("1970-01-01T00:00:00Z", 0),
        ("0", 0),
    ],
)
def test_since_accepts_epoch_ms_and_iso_8601(text, ms):
    assert since_parse(text) == ms


# Text that tends to break integer and time parsing: other scripts' digits, huge numbers, dates.
awkward_text = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["²", "١", "٣٤", "１２", "0:²", "²:0", "-1", "9" * 19, "9" * 30, "0" * 25 + "1",
                     "1969-12-31T23:59:59Z", "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-23:59",
                     "2147483648", "9223372036854775808", "crm.audit/0:1", "items.²:x", ""]),
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.builds(lambda a, b: f"{a}:{b}", st.integers(-5, 2**64).map(str), st.integers(-5, 2**64).map(str)),
)
names = st.sampled_from(sorted(sr.REPEATABLE | sr.SINGLE)) | st.text(max_size=12)


@example(pairs=[("partition", "²")], last_event_id=None)  # a 500 (int() refused what isdigit() took)
@example(pairs=[("offset", "0:²")], last_event_id=None)
@example(pairs=[("partition", "١")], last_event_id=None)  # was read as partition 1
@example(pairs=[("since", "9999999999999999999")], last_event_id=None)
@example(pairs=[("since", "1969-12-31T23:59:59Z")], last_event_id=None)
@example(pairs=[("topic", "crm.audit"), ("offset", "²:0")], last_event_id="")
@hypothesis_settings(max_examples=500)
@given(
    pairs=st.lists(st.tuples(names, awkward_text), max_size=8),
    last_event_id=st.none() | st.text(max_size=40) | st.just(AUDIT_TOKEN),
)
def test_any_query_parses_or_fails_as_a_bad_request(pairs, last_event_id):
    query = QueryDict(mutable=True)
    for name, value in pairs:
        query.appendlist(name, value)
    try:
        request = stream_request_parse(query, last_event_id=last_event_id, served=SERVED)
    except StreamRequestError as error:
        assert error.status == 400 and error.message
        json.dumps(error_response(error).content.decode())
        return
    assert isinstance(request, StreamRequest)
    # Integers are ASCII digits only: `١` is not read as partition 1.
    assert all(value.isascii() for name, value in pairs if name in ("partition", "offset"))
    assert all(0 <= p <= sr.PARTITION_MAX for p in request.event_filter.partitions)
    for (_, partition), offset in request.offsets.items():
        assert 0 <= partition <= sr.PARTITION_MAX and 0 <= offset <= MAX_OFFSET
    assert request.since_ms is None or 0 <= request.since_ms <= sr.SINCE_MAX_MS
