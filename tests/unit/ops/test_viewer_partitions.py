"""The partitions panel's report: the hub's positions with the lag its heartbeats carried."""

from __future__ import annotations

from channels.layers import InMemoryChannelLayer

from crm_events.core import messages as broadcast
from crm_events.fanout.hub import EventHub
from crm_events.ops.viewer_partitions import lag_by_position, lag_key_parse, partitions_report
from tests.support.payloads import serving


def hub_at(positions: dict) -> EventHub:
    hub = EventHub(InMemoryChannelLayer(), serving("t", "u"))
    hub.positions.update(positions)
    hub.positions_ready.set()
    return hub


def test_lag_keys_are_topic_colon_partition_and_anything_else_is_ignored():
    assert lag_key_parse("t:0") == ("t", 0)
    assert lag_key_parse("a:b:12") == ("a:b", 12)  # the partition is after the last colon
    for foreign in ("t", ":0", "t:", "t:x", "t:-1", "t:١", "t:²"):
        assert lag_key_parse(foreign) is None, foreign


def test_two_consumers_on_one_partition_show_the_larger_lag():
    merged = lag_by_position({"old": {"t:0": 9, "t:1": 0}, "new": {"t:0": 2, "bad": 5}})
    assert merged == {("t", 0): (9, "old"), ("t", 1): (0, "old")}


async def test_report_rows_per_partition_with_last_offset_and_lag():
    hub = hub_at({("t", 1): 20, ("t", 0): 0, ("u", 0): 5})
    await hub.heartbeat_handle(broadcast.heartbeat_message(consumer_id="c1", lag={"t:1": 4, "u:0": 0}))
    report = partitions_report(hub, heartbeat_max_age=60)
    assert (report["ok"], report["positioned"], report["heartbeat_max_age"]) == (True, True, 60)
    assert 0 <= report["heartbeat_age"] < 5
    assert report["partitions"] == [
        {"topic": "t", "partition": 0, "next_offset": 0, "last_offset": None, "lag": None, "consumer": None},
        {"topic": "t", "partition": 1, "next_offset": 20, "last_offset": 19, "lag": 4, "consumer": "c1"},
        {"topic": "u", "partition": 0, "next_offset": 5, "last_offset": 4, "lag": 0, "consumer": "c1"},
    ]


async def test_a_consumer_not_heard_from_within_the_limit_leaves_no_lag():
    hub = hub_at({("t", 0): 3})
    await hub.heartbeat_handle(broadcast.heartbeat_message(consumer_id="gone", lag={"t:0": 7}))
    hub._lag_heard_at["gone"] -= 10  # as if its last heartbeat came 10 s ago
    report = partitions_report(hub, heartbeat_max_age=2)
    assert report["partitions"][0]["lag"] is None


def test_before_the_hub_has_positions_the_report_says_so():
    hub = EventHub(InMemoryChannelLayer(), serving("t"))
    report = partitions_report(hub, heartbeat_max_age=2)
    assert (report["positioned"], report["heartbeat_age"], report["partitions"]) == (False, None, [])
