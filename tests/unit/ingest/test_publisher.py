from aiokafka import TopicPartition
from aiokafka.structs import ConsumerRecord
from prometheus_client import REGISTRY
from redis.exceptions import OutOfMemoryError

from crm_events.config import kafka_config
from crm_events.ingest import publisher
from crm_events.ingest.layer_send import message_bytes

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


class TightLayer(Layer):
    """Redis with little room: a message of more than `room` bytes is refused for memory."""

    def __init__(self, room: int) -> None:
        super().__init__()
        self.room = room

    async def group_send(self, group: str, message: dict) -> None:
        if message_bytes(message["records"]) > self.room:
            raise OutOfMemoryError("command not allowed when used memory > 'maxmemory'.")
        await super().group_send(group, message)


async def test_a_record_the_layer_refuses_is_published_by_reference_counted_logged_and_committed_past(caplog):
    def by_reference() -> float:
        return REGISTRY.get_sample_value("aetherlink_records_by_reference_total", {"topic": "t"}) or 0.0

    big = ConsumerRecord("t", 0, 4, 0, 0, None, b'"' + b"b" * 100_000 + b'"', None, 0, 100_002, ())
    before = by_reference()
    layer = TightLayer(room=10_000)
    events = publisher.EventPublisher(config=kafka_config(), layer=layer, heartbeat_interval=1)
    tracker = tracker_at(3)
    assert await events.publish_poll(tracker, {TP: [kafka_record(3), big, kafka_record(5)]})
    sent = [item for message in layer.sent for item in message["records"]]
    assert [("ref" in item, item["prev"]) for item in sent] == [(False, 3), (True, 4), (False, 5)]
    assert tracker.next_offsets[TP] == 6, "committed past"
    assert by_reference() == before + 1
    assert "record t:0@4 (100002 bytes) published by reference" in caplog.text
    assert events.watch.stalled() is None, "an idle consumer is not stalled"
