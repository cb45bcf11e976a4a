"""The hub's partitions follow Kafka's: added, gone, or started over."""

import asyncio
import dataclasses

from channels.layers import InMemoryChannelLayer

from crm_events.config import kafka_config
from crm_events.core import messages as broadcast
from crm_events.core.close_reasons import CloseReason
from crm_events.core.filters import EventFilter
from crm_events.core.tokens import token_decode
from crm_events.exceptions import KafkaUnavailable
from crm_events.fanout.hub import EventHub
from crm_events.fanout.subscriber import StreamSubscriber
from crm_events.streams.catch_up import replay_until_live
from tests.support.fake_offsets import Kafka
from tests.support.payloads import domain_payload
from tests.support.processes import async_wait_until
from tests.support.transports import RecordingTransport, delivered


def record(offset: int, *, partition: int, prev: int, topic: str = "t") -> dict:
    event = domain_payload(topic=topic, partition=partition, offset=offset, type_="x")
    return broadcast.record_item(event, prev=prev, size=1)


def hub_over(kafka: Kafka, positions: dict, *, period: float = 30.0) -> EventHub:
    config = dataclasses.replace(kafka_config(), topics=("t", "u"), metadata_max_age=period)
    hub = EventHub(InMemoryChannelLayer(), config)
    hub.offsets = kafka
    hub.positions.update(positions)
    hub.positions_ready.set()
    return hub


def live(hub: EventHub, topics: tuple[str, ...] = ("t",)) -> StreamSubscriber:
    subscriber = StreamSubscriber(
        topics=topics, positions=hub.positions_for(topics), event_filter=EventFilter(), max_frames=10,
        transport=RecordingTransport(),
    )
    hub.subscribe(subscriber)
    return subscriber


def catching_up(hub: EventHub, positions: dict) -> StreamSubscriber:
    subscriber = StreamSubscriber(
        topics=("t",), positions=positions, event_filter=EventFilter(), max_frames=10,
        transport=RecordingTransport(),
    )
    hub.attach(subscriber)
    return subscriber


def token_of(chunk: bytes) -> dict:
    return token_decode(chunk.split(b"\n")[0].removeprefix(b"id: ").decode(), ("t",))


async def test_a_partition_added_to_kafka_joins_every_live_stream_at_its_log_start_in_step_with_the_hub():
    kafka = Kafka({("t", 0): (0, 5), ("t", 1): (0, 0), ("u", 0): (0, 1)})
    hub = hub_over(kafka, {("t", 0): 5, ("u", 0): 1})
    first, second, other_topic = live(hub), live(hub), live(hub, ("u",))
    await hub.partition_watch.refresh()
    assert hub.positions == {("t", 0): 5, ("t", 1): 0, ("u", 0): 1}
    assert first.positions == second.positions == {("t", 0): 5, ("t", 1): 0}
    assert first.in_sync and second.in_sync
    assert other_topic.positions == {("u", 0): 1} and other_topic.in_sync
    await delivered(hub, broadcast.records_message([record(0, partition=1, prev=0)]))
    frames = first.transport.take(), second.transport.take()
    assert frames[0] == frames[1], "still in step: the same frame"
    assert token_of(frames[0]) == {("t", 0): 5, ("t", 1): 1}
    assert first.close_reason is None


async def test_a_record_of_a_partition_the_hub_does_not_know_yet_adds_it_at_the_records_prev():
    hub = hub_over(Kafka({}), {("t", 0): 5})
    subscriber = live(hub)
    await delivered(hub, broadcast.records_message([record(2, partition=1, prev=2)]))
    assert hub.positions == {("t", 0): 5, ("t", 1): 3}
    assert subscriber.in_sync
    assert token_of(subscriber.transport.take()) == {("t", 0): 5, ("t", 1): 3}


async def test_a_stream_still_catching_up_when_the_partitions_change_is_sent_to_resume():
    hub = hub_over(Kafka({("t", 0): (0, 5), ("t", 1): (0, 0)}), {("t", 0): 5})
    subscriber = catching_up(hub, {("t", 0): 2})
    await hub.partition_watch.refresh()
    replay = replay_until_live(hub, subscriber, hub.config, is_cancelled=lambda: False)
    chunks = [chunk async for chunk in replay]
    assert chunks == [] and subscriber.close_reason == CloseReason.RESYNC
    assert subscriber not in hub.subscribers
    assert subscriber.positions == {("t", 0): 2}, "its id resumes where it was; the new plan adds the rest"


async def test_a_log_that_ends_before_the_hubs_position_is_started_over_and_its_streams_resume():
    # Topic `t` was deleted and recreated with one partition; `u` lives on.
    kafka = Kafka({("t", 0): (0, 2), ("u", 0): (0, 9)})
    hub = hub_over(kafka, {("t", 0): 40, ("t", 1): 40, ("u", 0): 9})
    of_t, of_u, of_both = live(hub), live(hub, ("u",)), live(hub, ("t", "u"))
    await hub.partition_watch.refresh()
    assert hub.positions == {("t", 0): 0, ("u", 0): 9}
    assert of_t.close_reason == of_both.close_reason == CloseReason.RESYNC
    assert of_u.close_reason is None
    await hub.partition_watch.refresh()  # nothing changed since: nobody else is sent away
    assert hub.positions == {("t", 0): 0, ("u", 0): 9}


async def test_a_topic_that_no_longer_exists_loses_its_partitions():
    hub = hub_over(Kafka({("u", 0): (0, 9)}), {("t", 0): 4, ("u", 0): 9})
    of_t = live(hub)
    await hub.partition_watch.refresh()
    assert hub.positions == {("u", 0): 9}
    assert of_t.close_reason == CloseReason.RESYNC


class FailingOnce(Kafka):
    async def topic_partitions(self, topics):
        if not self.asked:
            self.asked.append("failed")
            raise KafkaUnavailable("Kafka did not answer (describe topics): timeout")
        return await super().topic_partitions(topics)


async def test_the_watch_looks_every_period_and_goes_on_after_kafka_failed_to_answer():
    kafka = FailingOnce({("t", 0): (0, 1), ("t", 1): (0, 0)})
    hub = hub_over(kafka, {("t", 0): 1}, period=0.01)
    watch = asyncio.create_task(hub.partition_watch.run())
    try:
        await async_wait_until(lambda: ("t", 1) in hub.positions, timeout=5, what="the added partition")
    finally:
        watch.cancel()
        await asyncio.gather(watch, return_exceptions=True)
    assert kafka.asked[:2] == ["failed", "describe"]
