"""The hub against whatever the layer brings: foreign messages, failing streams, a failing receive."""

from __future__ import annotations

import asyncio
import json
import logging

from channels.layers import InMemoryChannelLayer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import REGISTRY

from crm_events.core import messages as broadcast
from crm_events.core.close_reasons import CloseReason
from crm_events.core.filters import EventFilter
from crm_events.fanout.hub import EventHub
from crm_events.fanout.subscriber import StreamSubscriber
from crm_events.ops.process_checks import hub_ready_check
from crm_events.ops.readiness import CHECK_OK, CONSUMER_UNKNOWN, ReadinessConfig, consumer_check, hub_check
from tests.support.payloads import domain_payload, serving
from tests.support.processes import async_wait_until
from tests.support.transports import RecordingTransport, delivered

TOPICS = ("t",)


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def hub_at(offset: int = 0, **kwargs) -> EventHub:
    hub = EventHub(kwargs.pop("layer", None) or InMemoryChannelLayer(), serving(*TOPICS))
    hub.positions[("t", 0)] = offset
    hub.positions_ready.set()
    return hub


def subscribed(hub: EventHub, event_filter=None) -> StreamSubscriber:
    subscriber = StreamSubscriber(
        topics=TOPICS, positions=hub.positions_for(TOPICS), event_filter=event_filter or EventFilter(),
        max_frames=100, transport=RecordingTransport(),
    )
    hub.subscribe(subscriber)
    return subscriber


def records(*offsets: int, **payload) -> dict:
    items = [broadcast.record_item(domain_payload(offset=o, **payload), prev=o, size=1) for o in offsets]
    return broadcast.records_message(items)


def offsets_in(chunk: bytes) -> list[int]:
    """The offsets of the domain events in `chunk`, in order (whatever order their fields came in)."""
    lines = chunk.split(b"\n")
    payloads = [json.loads(line.removeprefix(b"data: ")) for line in lines if line.startswith(b"data: ")]
    return [payload["offset"] for payload in payloads if payload.get("kind") == "domain_event"]


# Layer messages as another version of us, or a stray publisher, might send them.
anything = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8) | st.binary(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=10,
)
field_names = st.sampled_from(["prev", "size", "event", "kind", "topic", "partition", "offset", "timestamp",
                               "key", "headers", "type", "value", "value_format", "x"])


@st.composite
def near_records(draw) -> dict:
    """A records message whose items are real ones with fields dropped or replaced by anything."""
    items = []
    for offset in range(draw(st.integers(0, 3))):
        item = broadcast.record_item(domain_payload(offset=1_000 + offset), prev=1_000 + offset, size=1)
        for name in draw(st.lists(field_names, max_size=3)):
            target = item if name in ("prev", "size", "event") else item.get("event")
            if not isinstance(target, dict):
                continue  # the event itself was replaced already
            if draw(st.booleans()):
                target.pop(name, None)
            else:
                target[name] = draw(anything)
        items.append(item)
    message = broadcast.records_message(items)
    for name in draw(st.lists(st.sampled_from(["type", "v", "records", "source"]), max_size=2)):
        message[name] = draw(anything)
    return message


reference_fields = st.sampled_from(
    ["prev", "size", "ref", "event", "topic", "partition", "offset", "reason", "x"]
)


@st.composite
def near_references(draw) -> dict:
    """A records message of references (records sent by their position) with fields dropped or
    replaced by anything, among real records."""
    items = []
    for offset in range(draw(st.integers(0, 3))):
        item = broadcast.reference_item(
            topic="t", partition=0, offset=1_000 + offset, prev=1_000 + offset, size=1, reason="too big"
        )
        for name in draw(st.lists(reference_fields, max_size=3)):
            target = item if name in ("prev", "size", "ref", "event") else item.get("ref")
            if not isinstance(target, dict):
                continue  # the reference itself was replaced already
            if draw(st.booleans()):
                target.pop(name, None)
            else:
                target[name] = draw(anything)
        items.append(item)
        if draw(st.booleans()):
            event = domain_payload(offset=2_000 + offset)
            items.append(broadcast.record_item(event, prev=2_000 + offset, size=1))
    return broadcast.records_message(items)


@st.composite
def near_heartbeats(draw) -> dict:
    message = broadcast.heartbeat_message(
        consumer_id="c", lag={"t:0": 0}, published=[("t", 0, 0)],
        stalled=draw(st.none() | st.just((50.0, "r"))),
    )
    for name in draw(st.lists(st.sampled_from(["consumer", "lag", "published", "v", "type", "stalled"]),
                              max_size=3)):
        message[name] = draw(anything)
    return message


@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(message=st.one_of(anything, near_records(), near_references(), near_heartbeats()))
async def test_no_message_stops_the_hub_and_events_after_it_still_arrive(message):
    hub = hub_at(0)
    subscriber = subscribed(hub)

    async def no_kafka(position, start, stop):  # a heartbeat may ask for a repair: nothing to read
        hub.positions[position] = max(hub.positions[position], stop)

    async def gone_from_kafka(position, offset, reason):  # a reference: read, and nothing there
        await no_kafka(position, offset, offset + 1)

    hub.repairer = no_kafka
    hub.referencer = gone_from_kafka
    await delivered(hub, message)
    await delivered(hub, records(10**6))
    assert offsets_in(subscriber.transport.take())[-1:] == [10**6]


async def test_a_message_of_a_newer_version_or_another_cluster_is_skipped_and_counted():
    hub = hub_at(0)
    hub.source = "cluster-a"
    subscriber = subscribed(hub)
    too_new, other = sample("aetherlink_hub_foreign_messages_total", reason="too_new"), sample(
        "aetherlink_hub_foreign_messages_total", reason="other_source"
    )
    await delivered(hub, {**records(0), "v": broadcast.MESSAGE_VERSION + 1})
    await delivered(hub, {**records(1), "source": "cluster-b"})
    assert subscriber.transport.take() == b""
    assert sample("aetherlink_hub_foreign_messages_total", reason="too_new") == too_new + 1
    assert sample("aetherlink_hub_foreign_messages_total", reason="other_source") == other + 1
    # Version 1 without `v` or `source` is what consumers sent before either existed.
    legacy = records(0)
    del legacy["v"], legacy["source"]
    await delivered(hub, legacy)
    assert offsets_in(subscriber.transport.take()) == [0]


async def test_a_stream_that_fails_in_the_hub_is_sent_away_alone():
    class Exploding(EventFilter):
        def matches(self, payload):
            raise RuntimeError("a bug in one stream's filter")

    hub = hub_at(0)
    broken, healthy = subscribed(hub, Exploding()), subscribed(hub)
    errors = sample("aetherlink_hub_errors_total", stage="offer")
    await delivered(hub, records(0, 1))
    assert broken.close_reason == CloseReason.RESYNC
    assert offsets_in(healthy.transport.take()) == [0, 1]
    assert sample("aetherlink_hub_errors_total", stage="offer") == errors + 1  # once: it is closed now


class FlakyLayer(InMemoryChannelLayer):
    """Receives normally, except that it fails `failures` times with an error no one planned for."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures

    async def receive(self, channel):
        if self.failures:
            self.failures -= 1
            raise KeyError("a receive that failed in a way nobody planned for")
        return await super().receive(channel)


async def test_an_unexpected_receive_error_restarts_the_loop_counted_and_named_in_the_checks(caplog):
    layer = FlakyLayer(failures=1)
    hub = hub_at(0, layer=layer)
    subscriber = subscribed(hub)
    restarts = sample("aetherlink_hub_restarts_total")
    hub.start()
    try:
        await async_wait_until(lambda: hub.receive_failure, timeout=5, what="the failure")
        assert hub_check(hub).startswith("hub restarting after KeyError")
        assert hub_ready_check(hub).startswith("hub restarting after KeyError")  # its own failure: /readyz
        assert consumer_check(hub, ReadinessConfig(1, 15)) == CONSUMER_UNKNOWN
        assert "the receive loop failed" in caplog.text and "Traceback" in caplog.text
        await async_wait_until(lambda: hub.subscription.connected, timeout=10, what="rejoined")
        await layer.group_send(broadcast.BROADCAST_GROUP, records(0))
        assert offsets_in(subscriber.transport.take()) == [0]
        assert hub.receive_failure is None and hub_check(hub) == CHECK_OK == hub_ready_check(hub)
        assert sample("aetherlink_hub_restarts_total") == restarts + 1
    finally:
        await hub.stop()


async def test_resubscribing_survives_any_number_of_failed_attempts(caplog):
    """100,000 failed attempts on a fake clock (the old backoff overflowed at about 1,025)."""
    failures = 100_000
    caplog.set_level(logging.ERROR, logger="crm_events.fanout.subscription")  # one line per attempt
    from redis.exceptions import ConnectionError as RedisConnectionError

    from crm_events.fanout.subscription import RESUBSCRIBE_BACKOFF_MAX, LayerSubscription

    class DownLayer(InMemoryChannelLayer):
        def __init__(self) -> None:
            super().__init__()
            self.down_for = failures

        async def group_add(self, group, channel):
            if self.down_for:
                self.down_for -= 1
                raise RedisConnectionError("Redis is away")
            await super().group_add(group, channel)

    clock = [0.0]

    async def fake_sleep(delay: float) -> None:
        assert 0 < delay <= RESUBSCRIBE_BACKOFF_MAX
        clock[0] += delay

    layer = DownLayer()
    received: list = []

    async def handle(message):
        received.append(message)

    subscription = LayerSubscription(layer, broadcast.BROADCAST_GROUP, handle, sleep=fake_sleep)
    running = asyncio.create_task(subscription.run())
    try:
        await async_wait_until(lambda: subscription.connected, timeout=120, what="subscribed again")
        await layer.group_send(broadcast.BROADCAST_GROUP, {"type": "crm.heartbeat"})
        await async_wait_until(lambda: received, timeout=5, what="a message after the outage")
    finally:
        running.cancel()
    assert layer.down_for == 0
    assert clock[0] > failures * RESUBSCRIBE_BACKOFF_MAX * 0.8 * 0.99, "every attempt waited its backoff"


async def test_a_hub_whose_redis_comes_back_after_an_hour_repairs_what_it_missed():
    """An hour of Redis outage on a fake clock, then the consumer's records again: the hub
    rejoins, and the records published meanwhile (lost with Redis) are repaired from Kafka."""
    from redis.exceptions import ConnectionError as RedisConnectionError

    from crm_events.fanout.subscription import LayerSubscription

    clock = [0.0]

    class HourLongOutage(InMemoryChannelLayer):
        async def group_add(self, group, channel):
            if clock[0] < 3600:
                raise RedisConnectionError("Redis is away")
            await super().group_add(group, channel)

    async def fake_sleep(delay: float) -> None:
        clock[0] += delay

    layer = HourLongOutage()
    hub = hub_at(5, layer=layer)
    hub.subscription = LayerSubscription(
        layer, broadcast.BROADCAST_GROUP, hub.message_handle, sleep=fake_sleep
    )
    subscriber = subscribed(hub)
    repairs = []

    async def repair(position, start, stop):  # what Kafka would give back: those offsets, in order
        repairs.append((start, stop))
        for offset in range(start, stop):
            hub.event_dispatch(domain_payload(offset=offset))

    hub.repairer = repair
    hub.start()
    try:
        await async_wait_until(lambda: hub.subscription.connected, timeout=30, what="rejoined after an hour")
        assert clock[0] >= 3600
        # While it was away the consumer published offsets 5..8; 9 comes now, with prev 9.
        await layer.group_send(broadcast.BROADCAST_GROUP, records(9))
        await async_wait_until(lambda: hub.positions[("t", 0)] == 10, timeout=5, what="offset 9 passed on")
    finally:
        await hub.stop()
    assert repairs == [(5, 9)]
    assert offsets_in(subscriber.transport.take()) == [5, 6, 7, 8, 9]


def referenced(offset: int, prev: int | None = None) -> dict:
    return broadcast.reference_item(
        topic="t", partition=0, offset=offset, prev=offset if prev is None else prev, size=4_500_000,
        reason="OutOfMemoryError: OOM command not allowed",
    )


async def test_a_record_sent_by_reference_is_read_from_kafka_in_its_place_and_only_once():
    hub = hub_at(0)
    subscriber = subscribed(hub)
    reads = []

    async def from_kafka(position, offset, reason):  # what Kafka gives back at that position
        reads.append((position, offset, reason))
        hub.event_dispatch(domain_payload(offset=offset))

    hub.referencer = from_kafka
    items = [broadcast.record_item(domain_payload(offset=0), prev=0, size=1), referenced(1),
             broadcast.record_item(domain_payload(offset=2), prev=2, size=1)]
    await delivered(hub, broadcast.records_message(items))
    await delivered(hub, broadcast.records_message([referenced(1)]))  # a restarted consumer's replay
    assert offsets_in(subscriber.transport.take()) == [0, 1, 2]
    assert reads == [(("t", 0), 1, "OutOfMemoryError: OOM command not allowed")]


async def test_a_reference_past_the_hubs_position_repairs_the_hole_first():
    hub = hub_at(0)
    subscriber = subscribed(hub)
    calls = []

    async def repair(position, start, stop):
        calls.append(("repair", start, stop))
        for offset in range(start, stop):
            hub.event_dispatch(domain_payload(offset=offset))

    async def from_kafka(position, offset, reason):
        calls.append(("reference", offset))
        hub.event_dispatch(domain_payload(offset=offset))

    hub.repairer, hub.referencer = repair, from_kafka
    await delivered(hub, broadcast.records_message([referenced(5, prev=3)]))
    assert calls == [("repair", 0, 3), ("reference", 5)]
    assert offsets_in(subscriber.transport.take()) == [0, 1, 2, 5]


def heartbeat(stalled=None, consumer="c") -> dict:
    return broadcast.heartbeat_message(consumer_id=consumer, lag={"t:0": 0}, stalled=stalled)


async def test_readyz_says_publishing_is_stalled_while_heartbeats_still_arrive_and_stops_when_it_moves():
    hub = hub_at(0)
    config = ReadinessConfig(1, 15)
    await delivered(hub, heartbeat())
    assert consumer_check(hub, config) == CHECK_OK
    await delivered(hub, heartbeat(stalled=(46.2, "OutOfMemoryError: OOM command not allowed")))
    check = consumer_check(hub, config)
    assert check.startswith("publishing stalled for 46 s: OutOfMemoryError: OOM command not allowed"), check
    assert hub.publishing_stalls(15)["c"] >= 46.2
    await delivered(hub, heartbeat())
    assert consumer_check(hub, config) == CHECK_OK and hub.publishing_stalls(15) == {"c": 0.0}


async def test_a_stall_reported_by_a_consumer_no_longer_heard_from_is_forgotten():
    hub = hub_at(0)
    await delivered(hub, heartbeat(stalled=(50.0, "stopped since"), consumer="old"))
    assert hub.publishing_stalled(15) is not None
    await asyncio.sleep(0.05)
    await delivered(hub, heartbeat(consumer="new"))
    assert hub.publishing_stalled(0.04) is None, "the old consumer's last word is too old to count"
    assert hub.publishing_stalls(15) == {"new": 0.0}, "and it is forgotten"
