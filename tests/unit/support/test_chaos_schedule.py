"""The chaos run's schedule (tests/support/chaos_schedule.py): replayable, spaced, overlaps rare."""

from __future__ import annotations

import itertools

import pytest

from tests.support.chaos_schedule import ACTIONS, MIN_SPACING, actions_parse, schedule


def steps(seed: int, actions=ACTIONS, count: int = 400):
    return list(itertools.islice(schedule(seed, actions, hostile=["h1", "h2"], foreign=["f1"]), count))


def test_a_seed_replays_the_same_schedule_and_another_seed_does_not():
    assert steps(42) == steps(42)
    assert steps(42) != steps(43)


def test_faults_are_spaced_unless_they_overlap_a_different_part_of_an_outage():
    plan = steps(7)
    for previous, step in itertools.pairwise(plan):
        if step.overlap:
            assert not previous.overlap and step.action != previous.action
            assert 0.3 <= step.after_s <= previous.down_s
        else:
            assert step.after_s >= MIN_SPACING
    overlapping = sum(step.overlap for step in plan)
    assert 0 < overlapping < len(plan) / 3
    assert {step.action for step in plan} == set(ACTIONS)


def test_actions_can_be_switched_off_and_unknown_ones_are_refused():
    assert actions_parse(None) == ACTIONS
    assert actions_parse(" kafka, redis ,kafka") == ("kafka", "redis")
    assert {step.action for step in steps(1, ("consumer", "daphne"))} == {"consumer", "daphne"}
    with pytest.raises(ValueError, match="bogus"):
        actions_parse("kafka,bogus")
