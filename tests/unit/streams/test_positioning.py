import dataclasses

import pytest
from channels.layers import InMemoryChannelLayer

from crm_events.config import kafka_config
from crm_events.core.filters import EventFilter
from crm_events.core.stream_frames import Gap, Reset
from crm_events.exceptions import StreamRequestError
from crm_events.fanout.hub import EventHub
from crm_events.streams.positioning import StartPlan, start_plan
from crm_events.streams.request import START_EARLIEST, StreamRequest
from tests.support.fake_offsets import Kafka


def hub_with(kafka: Kafka, positions: dict) -> EventHub:
    hub = EventHub(InMemoryChannelLayer(), dataclasses.replace(kafka_config(), topics=("t", "u")))
    hub.offsets = kafka
    hub.positions.update(positions)
    hub.positions_ready.set()
    return hub


def resume(token_positions: dict, topics=("t",)) -> StreamRequest:
    return StreamRequest(topics=topics, event_filter=EventFilter(), resume_positions=token_positions)


async def test_a_token_resumes_exactly_where_it_was_and_asks_kafka_nothing_when_within_the_log():
    kafka = Kafka({("t", 0): (0, 10), ("t", 1): (0, 10)})
    hub = hub_with(kafka, {("t", 0): 10, ("t", 1): 10})
    plan = await start_plan(resume({("t", 0): 10, ("t", 1): 10}), hub)
    assert plan == StartPlan({("t", 0): 10, ("t", 1): 10})
    assert kafka.asked == []


async def test_a_token_past_its_partitions_end_restarts_at_the_log_start_with_a_reset():
    # The topic was deleted and recreated: the new log holds 3 records from offset 0, and
    # the hub, having seen that, started the partition over (see partition_watch.py).
    kafka = Kafka({("t", 0): (0, 3), ("t", 1): (0, 12)})
    hub = hub_with(kafka, {("t", 0): 3, ("t", 1): 12})
    plan = await start_plan(resume({("t", 0): 40, ("t", 1): 11}), hub)
    assert plan.positions == {("t", 0): 0, ("t", 1): 11}
    assert plan.resets == [Reset("t", 0, requested=40, end=3, restart=0)]
    assert plan.gaps == []


async def test_a_restart_is_at_the_new_logs_start_and_is_not_also_a_retention_gap():
    kafka = Kafka({("t", 0): (5, 8)})  # recreated, and its first records already deleted
    hub = hub_with(kafka, {("t", 0): 8})
    plan = await start_plan(resume({("t", 0): 40}), hub)
    assert plan.positions == {("t", 0): 5}
    assert plan.resets == [Reset("t", 0, requested=40, end=8, restart=5)]
    assert plan.gaps == []


async def test_a_token_ahead_of_this_process_but_within_the_log_is_kept():
    # Another web process had already passed on more: no reset, this one catches up to it.
    kafka = Kafka({("t", 0): (0, 20)})
    hub = hub_with(kafka, {("t", 0): 15})
    assert await start_plan(resume({("t", 0): 18}), hub) == StartPlan({("t", 0): 18})


async def test_a_token_naming_a_partition_that_is_gone_drops_it_with_a_reset_not_a_400():
    kafka = Kafka({("t", 0): (0, 4)})  # recreated with one partition
    hub = hub_with(kafka, {("t", 0): 4})
    plan = await start_plan(resume({("t", 0): 4, ("t", 1): 9, ("t", 2): 0}), hub)
    assert plan.positions == {("t", 0): 4}
    assert plan.resets == [
        Reset("t", 1, requested=9, end=None, restart=None),
        Reset("t", 2, requested=0, end=None, restart=None),
    ]
    assert kafka.asked[0] == "describe", "the hub looked at Kafka before calling the partitions gone"


async def test_a_token_naming_a_partition_this_process_has_not_seen_yet_looks_at_kafka_first():
    # Partition 2 was added a moment ago; another web process saw it and made this token.
    kafka = Kafka({("t", 0): (0, 4), ("t", 1): (0, 4), ("t", 2): (0, 3)})
    hub = hub_with(kafka, {("t", 0): 4, ("t", 1): 4})
    plan = await start_plan(resume({("t", 0): 4, ("t", 1): 4, ("t", 2): 1}), hub)
    assert plan == StartPlan({("t", 0): 4, ("t", 1): 4, ("t", 2): 1})
    assert hub.positions[("t", 2)] == 0, "the hub added it at its log start"


async def test_a_token_made_before_partitions_were_added_covers_them_from_offset_zero():
    kafka = Kafka({("t", 0): (0, 4), ("t", 1): (0, 4), ("t", 2): (0, 2), ("u", 0): (0, 7)})
    hub = hub_with(kafka, {("t", 0): 4, ("t", 1): 4, ("t", 2): 2, ("u", 0): 7})
    plan = await start_plan(resume({("t", 0): 3, ("t", 1): 4}, topics=("t", "u")), hub)
    # Partition 2 of `t` is new to the token: all of it. Topic `u` it does not mention: live.
    assert plan == StartPlan({("t", 0): 3, ("t", 1): 4, ("t", 2): 0, ("u", 0): 7})


async def test_retention_gaps_are_still_reported_beside_resets():
    kafka = Kafka({("t", 0): (6, 20), ("t", 1): (0, 2)})
    hub = hub_with(kafka, {("t", 0): 20, ("t", 1): 2})
    plan = await start_plan(resume({("t", 0): 2, ("t", 1): 9}), hub)
    assert plan.positions == {("t", 0): 6, ("t", 1): 0}
    assert plan.gaps == [Gap("t", 0, first=2, last=5)]
    assert plan.resets == [Reset("t", 1, requested=9, end=2, restart=0)]


async def test_an_explicit_offset_past_the_end_waits_at_the_end_and_an_unknown_partition_is_a_400():
    kafka = Kafka({("t", 0): (0, 5)})
    hub = hub_with(kafka, {("t", 0): 5})
    request = StreamRequest(topics=("t",), event_filter=EventFilter(), start=START_EARLIEST,
                            offsets={("t", 0): 50})
    assert await start_plan(request, hub) == StartPlan({("t", 0): 5})
    unknown = StreamRequest(topics=("t",), event_filter=EventFilter(), offsets={("t", 3): 0})
    with pytest.raises(StreamRequestError, match="^partition 3 of t does not exist$"):
        await start_plan(unknown, hub)


async def test_requests_naming_unknown_partitions_make_the_hub_look_at_kafka_at_most_once_a_second():
    kafka = Kafka({("t", 0): (0, 4)})
    hub = hub_with(kafka, {("t", 0): 4})
    for _ in range(20):
        plan = await start_plan(resume({("t", 0): 4, ("t", 7): 0}), hub)
        assert plan.resets == [Reset("t", 7, requested=0, end=None, restart=None)]
    assert kafka.asked.count("describe") == 1
