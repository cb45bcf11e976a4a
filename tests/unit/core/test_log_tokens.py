"""Resume ids naming places in the positions log: versions 2 (a point), 3 (a catch-up) and 4
(a point amended in a few partitions)."""

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crm_events.core.log_tokens import (
    AMENDED_MAX,
    TOKEN_OTHER_LOG,
    amended_token_encode,
    between_token_encode,
    log_token_encode,
    resume_id_decode,
)
from crm_events.core.position_log import Amended, Between, LogPoint, Registered, amended_state
from crm_events.core.tokens import TOKEN_UNKNOWN_TOPIC, ResumeTokenError, token_decode, token_encode

TOPICS = ("aetherlink.events", "crm.audit")


LOG = "crm-events-sse.positions"
points = st.one_of(
    st.builds(LogPoint, st.integers(0, 2**62)),
    st.builds(LogPoint, st.integers(0, 2**62), st.integers(0, 2000), st.integers(0, 2**62)),
)


@given(points)
def test_a_log_point_id_resolves_to_its_point_and_stays_small(point):
    token = log_token_encode(point, log_topic=LOG)
    assert resume_id_decode(token, TOPICS, log_topic=LOG) == point
    assert len(token) <= 40  # at 2,000 partitions and offsets near 2^62 as at 3


@given(st.lists(st.tuples(st.integers(0, 1999), st.integers(0, 2**62)), min_size=1, max_size=2000,
                unique_by=lambda pair: pair[0]))
def test_version_1_ids_of_up_to_2000_partitions_still_decode(pairs):
    positions = {("aetherlink.events", p): o for p, o in pairs}
    assert resume_id_decode(token_encode(positions), TOPICS, log_topic=LOG) == positions


def test_a_log_point_of_another_deployment_is_refused():
    token = log_token_encode(LogPoint(5, 1, 9), log_topic="other.positions")
    with pytest.raises(ResumeTokenError) as caught:
        resume_id_decode(token, TOPICS, log_topic=LOG)
    assert str(caught.value) == TOKEN_OTHER_LOG


def test_a_log_point_id_is_not_a_version_1_token():
    with pytest.raises(ResumeTokenError) as caught:
        token_decode(log_token_encode(LogPoint(5), log_topic=LOG), TOPICS)
    assert "version 2" in str(caught.value)


@given(st.text(max_size=80))
def test_any_text_is_an_id_of_either_version_or_a_clean_refusal(text):
    with contextlib.suppress(ResumeTokenError):
        resume_id_decode(text, TOPICS, log_topic=LOG)


refs = st.one_of(points, st.builds(Registered, st.integers(0, 2**62)))


@given(refs, refs, st.sampled_from(TOPICS), st.integers(0, 1999), st.integers(0, 2**62))
def test_a_catch_up_id_resolves_to_where_it_stands_and_stays_small(start, target, topic, partition, position):
    at = Between(start, target, topic, partition, position)
    token = between_token_encode(at, log_topic=LOG)
    assert resume_id_decode(token, TOPICS, log_topic=LOG) == at
    assert len(token) <= 128


def test_a_catch_up_id_naming_a_topic_this_stream_does_not_serve_is_refused():
    token = between_token_encode(Between(Registered(1), LogPoint(2), "other", 0, 5), log_topic=LOG)
    with pytest.raises(ResumeTokenError) as caught:
        resume_id_decode(token, TOPICS, log_topic=LOG)
    assert str(caught.value) == TOKEN_UNKNOWN_TOPIC


exceptions = st.lists(
    st.tuples(st.tuples(st.sampled_from(TOPICS), st.integers(0, 2**31 - 1)),
              st.none() | st.integers(0, 2**62)),
    max_size=AMENDED_MAX, unique_by=lambda exception: exception[0],
)


@given(points, exceptions)
def test_an_amended_point_resolves_to_itself_and_stays_under_256_at_the_largest_numbers(point, amended_in):
    amended = Amended(point, tuple(amended_in))
    token = amended_token_encode(amended, log_topic=LOG)
    assert resume_id_decode(token, TOPICS, log_topic=LOG) == amended
    assert len(token) <= 256


def test_an_amended_point_stands_for_the_point_with_its_exceptions():
    state = {("t", 0): 5, ("t", 1): 7}
    amended = Amended(LogPoint(3), ((("t", 1), 9), (("t", 2), None), (("t", 0), None)))
    assert amended_state(state, amended) == {("t", 1): 9}
