"""Access messages end exactly the streams they name (fanout/owners.py, the hub's access_handle)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import REGISTRY

from crm_events.core import messages as broadcast
from crm_events.core.close_reasons import CloseReason
from crm_events.fanout.owners import REMEMBERED_SECONDS, StreamOwners
from tests.unit.fanout.test_hub import hub_at, subscriber_at


class Stream:
    def __init__(self) -> None:
        self.reasons: list[str] = []

    def close(self, reason: str) -> None:
        self.reasons.append(reason)


def test_a_revocation_closes_the_streams_of_the_subjects_and_sessions_it_names_and_no_other():
    owners = StreamOwners()
    ana_1, ana_2, bo, anonymous = Stream(), Stream(), Stream(), Stream()
    owners.add(ana_1, subject="user:ana", session="s1")
    owners.add(ana_2, subject="user:ana", session="s2")
    owners.add(bo, subject="user:bo", session="s3")
    owners.add(anonymous, subject="anonymous", session=None)
    assert owners.revoke(subjects=[], sessions=["s2"], reason="logged_out") == 1
    assert (ana_1.reasons, ana_2.reasons, bo.reasons) == ([], ["logged_out"], [])
    assert owners.revoke(subjects=["user:ana", "user:nobody"], sessions=["s1"], reason="grants_changed") == 2
    assert (ana_1.reasons, ana_2.reasons[1:], bo.reasons, anonymous.reasons) == (
        ["grants_changed"], ["grants_changed"], [], [],
    )


@given(st.lists(st.tuples(st.sampled_from(["user:a", "user:b", "jwt:c"]),
                          st.sampled_from([None, "s1", "s2"]), st.booleans()), max_size=20))
def test_streams_that_ended_leave_nothing_behind(streams):
    owners = StreamOwners()
    added = [(Stream(), subject, session, ends) for subject, session, ends in streams]
    for stream, subject, session, _ in added:
        owners.add(stream, subject=subject, session=session)
    for stream, _, _, ends in added:
        if ends:
            owners.discard(stream)
    staying = [s for s in added if not s[3]]
    assert len(owners) == len(staying)
    closed = owners.revoke(subjects=["user:a", "user:b", "jwt:c"], sessions=["s1", "s2"], reason="logged_out")
    assert closed == len(staying)
    assert all(stream.reasons == ([] if ends else ["logged_out"]) for stream, _, _, ends in added)


async def test_the_hub_ends_the_named_streams_with_the_messages_reason():
    hub = hub_at({("t", 0): 0})
    ana, bo = subscriber_at(hub), subscriber_at(hub)
    hub.owners.add(ana, subject="user:ana", session="s1")
    hub.owners.add(bo, subject="user:bo", session="s2")
    message = broadcast.access_message(subjects=["user:ana"], reason=CloseReason.GRANTS_CHANGED)
    await hub.message_handle(message)
    assert (ana.close_reason, bo.close_reason) == (CloseReason.GRANTS_CHANGED, None)
    bo.close(CloseReason.SLOW)  # the first reason stays
    await hub.message_handle(broadcast.access_message(sessions=["s2"], reason=CloseReason.LOGGED_OUT))
    assert bo.close_reason == CloseReason.SLOW


async def test_an_access_message_the_hub_cannot_trust_ends_nothing():
    hub = hub_at({("t", 0): 0})
    ana = subscriber_at(hub)
    hub.owners.add(ana, subject="user:ana", session=None)
    before = {reason: skipped(reason) for reason in (broadcast.FOREIGN_MALFORMED, broadcast.FOREIGN_TOO_NEW)}
    good = broadcast.access_message(subjects=["user:ana"], reason=CloseReason.LOGGED_OUT)
    for bad in ({**good, "reason": "because"}, {**good, "subjects": "user:ana"}, {**good, "sessions": [1]},
                {**good, "v": broadcast.MESSAGE_VERSION + 1}):
        await hub.message_handle(bad)
    assert ana.close_reason is None
    assert skipped(broadcast.FOREIGN_MALFORMED) - before[broadcast.FOREIGN_MALFORMED] == 3
    assert skipped(broadcast.FOREIGN_TOO_NEW) - before[broadcast.FOREIGN_TOO_NEW] == 1


def skipped(reason: str) -> float:
    return REGISTRY.get_sample_value("aetherlink_hub_foreign_messages_total", {"reason": reason}) or 0.0


@given(st.dictionaries(st.sampled_from(["subjects", "sessions", "reason", "x"]),
                       st.none() | st.text() | st.sampled_from(sorted(broadcast.ACCESS_REASONS))
                       | st.lists(st.text() | st.integers(), max_size=3)))
def test_any_access_message_is_judged_without_raising(fields):
    problem = broadcast.access_check({"type": broadcast.MESSAGE_ACCESS, **fields})
    valid = (
        all(isinstance(fields.get(k), list) and all(isinstance(n, str) for n in fields[k])
            for k in ("subjects", "sessions"))
        and isinstance(fields.get("reason"), str) and fields["reason"] in broadcast.ACCESS_REASONS
    )
    assert (problem is None) == valid


def test_a_stream_registering_after_a_revocation_of_its_names_since_its_request_began_is_closed_at_once():
    now = [100.0]
    owners = StreamOwners(clock=lambda: now[0])
    owners.revoke(subjects=["user:ana"], sessions=[], reason="grants_changed")
    before, after, other = Stream(), Stream(), Stream()
    owners.add(before, subject="user:ana", session="s1", since=99.0)  # began before: read the old grant
    owners.add(after, subject="user:ana", session="s2", since=100.5)  # began after: read the new one
    owners.add(other, subject="user:bo", session="s3", since=99.0)
    assert (before.reasons, after.reasons, other.reasons) == (["grants_changed"], [], [])
    now[0] = 100.0 + REMEMBERED_SECONDS + 1  # forgotten once no stream can still be on its way
    owners.revoke(subjects=["user:cy"], sessions=[], reason="logged_out")
    late = Stream()
    owners.add(late, subject="user:ana", session=None, since=0.0)
    assert late.reasons == []
