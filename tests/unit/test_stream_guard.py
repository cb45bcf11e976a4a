from crm_events import canary
from crm_events.auth import Principal
from crm_events.filters import EventFilter
from crm_events.stream_guard import GuardedFilter

DEAL = {"kind": "domain_event", "topic": "t", "partition": 0, "offset": 1, "type": "deal.won", "key": "k"}
TICKET = {**DEAL, "type": "ticket.opened"}
CANARY = {**DEAL, "type": canary.CANARY_TYPE, "headers": {canary.CANARY_HEADER: "1"}}


def test_an_unrestricted_unfiltered_stream_takes_the_short_path_and_still_hides_canaries():
    guarded = GuardedFilter(EventFilter(), Principal("anonymous"))
    assert guarded.unfiltered
    assert guarded.matches(DEAL) and guarded.matches(TICKET)
    assert not guarded.matches(CANARY)
    assert GuardedFilter(EventFilter(), Principal("anonymous"), show_canary=True).matches(CANARY)


def test_a_filter_or_a_restricted_principal_is_checked_per_event():
    by_filter = GuardedFilter(EventFilter(kinds=frozenset({"deal"})), Principal("anonymous"))
    by_principal = GuardedFilter(EventFilter(), Principal("u", allowed_kinds=frozenset({"deal"})))
    for guarded in (by_filter, by_principal):
        assert not guarded.unfiltered
        assert guarded.matches(DEAL) and not guarded.matches(TICKET)
