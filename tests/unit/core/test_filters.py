import pytest
from django.http import QueryDict
from hypothesis import example, given, settings
from hypothesis import strategies as st

from crm_events.core.filters import EventFilter, FieldMatch, payload_key_form
from crm_events.exceptions import StreamRequestError
from crm_events.streams.request import stream_request_parse


def event(**overrides):
    payload = {"partition": 1, "key": "deal-1", "type": "deal.stage_changed",
               "value": {"deal": {"stage": "won", "amount": 5000, "closed": True, "tags": ["a", "b"]}}}
    payload.update(overrides)
    return payload


def test_no_filter_matches_everything():
    assert EventFilter().matches(event())


@pytest.mark.parametrize(
    ("event_filter", "expected"),
    [
        (EventFilter(kinds=frozenset({"deal"})), True),
        (EventFilter(kinds=frozenset({"deal.stage_changed"})), True),
        (EventFilter(kinds=frozenset({"dea"})), False),
        (EventFilter(kinds=frozenset({"ticket", "deal"})), True),
        (EventFilter(keys=frozenset({"deal-2"})), False),
        (EventFilter(partitions=frozenset({0, 1})), True),
        (EventFilter(fields=(FieldMatch(("deal", "stage"), "won"),)), True),
        (EventFilter(fields=(FieldMatch(("deal", "amount"), "5000"),)), True),
        (EventFilter(fields=(FieldMatch(("deal", "closed"), "true"),)), True),
        (EventFilter(fields=(FieldMatch(("deal", "tags", "1"), "b"),)), True),
        (EventFilter(fields=(FieldMatch(("deal", "missing"), "x"),)), False),
        (EventFilter(fields=(FieldMatch(("deal",), "won"),)), False),
        (EventFilter(kinds=frozenset({"deal"}), fields=(FieldMatch(("deal", "stage"), "lost"),)), False),
    ],
)
def test_filters(event_filter, expected):
    assert event_filter.matches(event()) is expected


def test_events_without_a_type_or_json_value_do_not_match_type_or_field_filters():
    plain = event(type=None, value="text")
    assert not EventFilter(kinds=frozenset({"deal"})).matches(plain)
    assert not EventFilter(fields=(FieldMatch(("deal", "stage"), "won"),)).matches(plain)


def test_list_indices_are_ascii_digits_decided_at_parse_time():
    # `²`.isdigit() is true but int("²") raises: this raised inside the hub's dispatch, for every client.
    superscript = FieldMatch(("items", "²"), "x")
    assert superscript.indices == (None, None)
    assert not superscript.matches({"items": ["x", "y", "z"]})
    assert superscript.matches({"items": {"²": "x"}})
    # `١` (Arabic-Indic one) is not index 1 either.
    assert not FieldMatch(("items", "١"), "y").matches({"items": ["x", "y"]})
    assert FieldMatch(("items", "1"), "y").indices == (None, 1)
    assert not FieldMatch(("items", "9" * 40), "y").matches({"items": ["x", "y"]})


# --- Matching never raises: any parsed `where` text against any JSON value ------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.text(max_size=4) | st.sampled_from(["0", "1", "²", "١", "items"]), inner, max_size=4),
    max_leaves=12,
)
segment = st.text(max_size=5) | st.sampled_from(["0", "1", "2", "²", "١", "٣", "01", "9" * 30, "items"])
where_text = st.text(max_size=30) | st.builds(
    lambda path, value: ".".join(path) + ":" + value, st.lists(segment, min_size=1, max_size=4),
    st.text(max_size=6) | st.sampled_from(["true", "null", "1", "x", "1.5"]),
)


@example(wheres=["items.²:x"], value={"items": ["x"]})  # raised ValueError at event time
@example(wheres=["items.١:x"], value={"items": ["a", "x"]})
@example(wheres=["n:1"], value={"n": 10**5000})  # str() of such an int raises
@settings(max_examples=500)
@given(wheres=st.lists(where_text, min_size=1, max_size=3), value=json_values)
def test_any_parsed_where_filter_matches_any_json_value_without_raising(wheres, value):
    query = QueryDict(mutable=True)
    query.setlist("where", wheres)
    try:
        event_filter = stream_request_parse(query, last_event_id=None, served=("t",)).event_filter
    except StreamRequestError:
        return
    payload = {"kind": "domain_event", "topic": "t", "partition": 0, "type": None, "value": value}
    assert event_filter.matches(payload) in (True, False)
    for field in event_filter.fields:
        assert field.matches(value) in (True, False)


def test_a_key_decoded_with_its_schema_matches_key_as_text_and_never_as_binary():
    assert payload_key_form({"key": "deal-1", "key_format": "avro"}) == "deal-1"
    assert payload_key_form({"key": {"base64": "/w=="}, "key_format": "json_schema"}) is None
    assert payload_key_form({"key": {"base64": "/w=="}}) == ("base64", "/w==")
