import pytest

from crm_events.filters import EventFilter, FieldMatch


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
