"""The runs a batch's positions-log record lists: one per run of a partition's records."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from crm_events.core.position_log import Segment
from crm_events.ingest.position_log import segments_of

# A poll's records in publishing order: runs of partitions (a partition may come back later).
RUNS = st.lists(
    st.tuples(st.sampled_from([("a", 0), ("a", 1), ("b", 0)]), st.integers(min_value=1, max_value=5)),
    max_size=8,
)


def items_of(runs: list[tuple[tuple[str, int], int]]) -> list[dict[str, Any]]:
    items, next_offset = [], {}
    for (topic, partition), count in runs:
        for _ in range(count):
            offset = next_offset.get((topic, partition), 10 * partition)
            event = {"topic": topic, "partition": partition, "offset": offset}
            items.append({"prev": offset, "event": event})
            next_offset[(topic, partition)] = offset + 1
    return items


@given(RUNS)
def test_each_run_of_one_partition_is_one_segment_and_each_item_names_its_own(runs):
    items = items_of(runs)
    segments = segments_of(items)
    for item in items:
        segment = segments[item["seg"]]
        event = item["event"]
        assert segment.position == (event["topic"], event["partition"])
        assert segment.start <= item["prev"] and event["offset"] < segment.end
    for segment, following in zip(segments, segments[1:], strict=False):
        assert segment.position != following.position  # a run ends where the partition changes
    assert [i["seg"] for i in items] == sorted(i["seg"] for i in items)
    for n, segment in enumerate(segments):
        run = [i for i in items if i["seg"] == n]
        assert segment == Segment(*segment.position, start=run[0]["prev"], end=run[-1]["event"]["offset"] + 1)


def test_no_items_no_segments():
    assert segments_of([]) == []
