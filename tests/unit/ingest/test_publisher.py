from aiokafka import TopicPartition
from aiokafka.structs import ConsumerRecord

from crm_events.config import kafka_config
from crm_events.ingest import publisher

TP = TopicPartition("t", 0)


def kafka_record(offset: int) -> ConsumerRecord:
    return ConsumerRecord("t", 0, offset, 0, 0, None, b"{}", None, 0, 2, ())


class Layer:
    def __init__(self) -> None:
        self.sent: list[dict] = []

    async def group_send(self, group: str, message: dict) -> None:
        self.sent.append(message)


class Ends:
    """The parts of a consumer `lag_measure` uses: the partitions' end offsets."""

    def __init__(self, ends: dict[TopicPartition, int]) -> None:
        self.ends = ends

    async def end_offsets(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        return {tp: self.ends[tp] for tp in tps}


def tracker_at(offset: int) -> publisher.PositionTracker:
    tracker = publisher.PositionTracker(consumer=None)
    tracker.next_offsets[TP] = offset
    return tracker


async def publish(tracker: publisher.PositionTracker, offsets: list[int]) -> list[tuple[int, int]]:
    layer = Layer()
    events = publisher.EventPublisher(config=kafka_config(), layer=layer, heartbeat_interval=1)
    assert await events.publish_poll(tracker, {TP: [kafka_record(o) for o in offsets]})
    return [(item["prev"], item["event"]["offset"]) for item in layer.sent[0]["records"]]


async def test_prev_spans_the_holes_between_records_so_none_looks_lost():
    # Markers, aborted and compacted records leave offsets with no record: prev is where the
    # consumer stood, the offset after the record before (a receiver at that offset loses nothing).
    tracker = tracker_at(3)
    assert await publish(tracker, [5, 6, 9]) == [(3, 5), (6, 6), (7, 9)]
    assert tracker.next_offsets[TP] == 10


async def test_after_the_log_started_over_prev_is_never_past_the_record():
    # The topic was recreated: the consumer's position went back to the new log's start.
    assert await publish(tracker_at(40), [0, 1]) == [(0, 0), (1, 1)]


async def test_what_was_published_is_never_claimed_past_a_log_that_started_over():
    tracker = tracker_at(40)
    lag = await publisher.lag_measure(Ends({TP: 3}), tracker)
    assert tracker.next_offsets[TP] == 3 and lag == {"t:0": 0}
    tracker = tracker_at(40)
    assert await publisher.lag_measure(Ends({TP: 45}), tracker) == {"t:0": 5}
    assert tracker.next_offsets[TP] == 40, "a live log is left alone"
