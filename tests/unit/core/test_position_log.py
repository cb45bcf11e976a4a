"""The positions log's records and what a point in it stands for."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crm_events.core.log_tokens import log_token_encode, resume_id_decode
from crm_events.core.position_log import (
    LogPoint,
    LogRecord,
    LogRecordError,
    LogState,
    Segment,
    log_record_decode,
    log_record_encode,
    log_state_at,
)

PARTITIONS = [("deals", 0), ("deals", 1), ("tickets", 0)]
TOPICS = {"deals", "tickets"}


THREE = st.just(PARTITIONS)


@st.composite
def histories(draw, partitions=THREE):
    """A consumer's batches as the log holds them, with the positions after every record
    passed, computed record by record as a hub passes them on."""
    drawn = draw(partitions)
    base = draw(st.sampled_from([0, 10**7, 2**62 - 10**4]))
    spread = draw(st.integers(0, 50))
    positions = {position: base + (index * spread) % 51 for index, position in enumerate(drawn)}
    records, states = [], []
    for number in range(draw(st.integers(1, 12))):
        snapshot = dict(positions) if number == 0 or draw(st.booleans()) else None
        segments = []
        for _ in range(draw(st.integers(0, 4))):
            position = draw(st.sampled_from(drawn))
            count = draw(st.integers(1, 5))
            start = positions[position]
            if draw(st.integers(0, 5)) == 0:
                start = max(0, start - draw(st.integers(1, 10)))  # a restarted consumer replays
            offsets = sorted(draw(st.sets(st.integers(start, start + 20), min_size=count, max_size=count)))
            passed = []
            for offset in offsets:
                positions[position] = max(positions[position], offset + 1)
                passed.append((LogPoint(number, len(segments), offset), dict(positions)))
            segments.append(Segment(*position, start=start, end=offsets[-1] + 1))
            states.extend(passed)
        records.append((number, LogRecord("consumer-1", tuple(segments), snapshot)))
        states.append((LogPoint(number), dict(positions)))
    return records, states


@given(histories())
def test_every_point_stands_for_the_positions_after_what_was_passed_up_to_it(history):
    records, states = history
    for point, expected in states:
        assert log_state_at(records, point, TOPICS) == expected


wide_topics = st.integers(1, 2000).map(lambda count: [("deals", p) for p in range(count)])


@settings(max_examples=25)
@given(histories(partitions=wide_topics))
def test_up_to_2000_partitions_at_offsets_up_to_2_62_every_id_is_small_and_resolves_exactly(history):
    records, states = history
    for point, expected in states:
        token = log_token_encode(point, log_topic="crm.positions")
        assert len(token) <= 40
        assert resume_id_decode(token, ("deals",), log_topic="crm.positions") == point
        assert log_state_at(records, point, {"deals"}) == expected


@given(histories())
def test_records_survive_the_log(history):
    records, _ = history
    for offset, record in records:
        assert log_record_decode(log_record_encode(record), offset=offset) == record


def test_only_partitions_a_snapshot_covers_are_resolved():
    record = LogRecord("c", (Segment("deals", 0, 0, 5), Segment("deals", 1, 3, 4)), {("deals", 0): 0})
    # deals:1 is only seen in a segment: what came before it is unknown here.
    assert log_state_at([(7, record)], LogPoint(7), {"deals"}) == {("deals", 0): 5}
    assert log_state_at([(7, record)], LogPoint(7), {"tickets"}) == {}
    assert log_state_at([(7, record)], LogPoint(8), {"deals"}) is None  # not in the window


def test_a_later_snapshot_behind_the_log_is_what_the_log_says():
    # A consumer that restarted from its last commit: the hub compares, the log does not guess.
    first = LogRecord("a", (Segment("deals", 0, 0, 10),), {("deals", 0): 0})
    second = LogRecord("b", (), {("deals", 0): 4})
    assert log_state_at([(0, first), (1, second)], LogPoint(1), {"deals"}) == {("deals", 0): 4}


@given(st.binary(max_size=200))
def test_any_bytes_are_a_record_or_a_clear_error(data):
    try:
        record = log_record_decode(data, offset=3)
    except LogRecordError as error:
        assert str(error).startswith("positions log record 3 is not one of ours")
    else:
        assert isinstance(record, LogRecord)


@pytest.mark.parametrize("body", [
    b'{"v":1,"consumer":"c","segments":[["t",-1,0,1]]}',
    b'{"v":1,"consumer":"c","segments":[["t",0,0]]}',
    b'{"v":1,"consumer":"c","segments":[],"snapshot":[["t",0,true]]}',
    b'{"v":2,"consumer":"c","segments":[]}',
    b'[]',
])
def test_records_of_other_shapes_are_refused(body):
    with pytest.raises(LogRecordError):
        log_record_decode(body, offset=0)


def test_a_state_only_moves_forward_except_by_snapshot():
    state = LogState()
    state.passed(("t", 0), 9)
    state.passed(("t", 0), 3)
    assert state.positions == {("t", 0): 10}
    state.snapshot_apply({("t", 0): 2})
    assert state.positions == {("t", 0): 2}
