import asyncio

from channels.layers import InMemoryChannelLayer

from crm_events import broadcast
from crm_events.fanout import EventHub
from crm_events.subscriber import CLOSE_SLOW, StreamSubscriber


def record(offset: int, *, prev: int | None = None, partition: int = 0) -> dict:
    event = {"kind": "domain_event", "topic": "t", "partition": partition, "offset": offset}
    return broadcast.record_item(event, prev=offset if prev is None else prev, size=1)


def frame(offset: int, partition: int = 0) -> bytes:
    return (
        f'data: {{"kind":"domain_event","topic":"t","partition":{partition},"offset":{offset}}}\n\n'
    ).encode()


async def test_each_event_reaches_every_subscriber_once_as_the_same_bytes():
    hub = EventHub(InMemoryChannelLayer())
    first, second = StreamSubscriber(max_frames=10), StreamSubscriber(max_frames=10)
    hub.subscribe(first)
    hub.subscribe(second)
    hub.message_handle(broadcast.records_message([record(0), record(1)]))
    # A restarted consumer replays offset 1: nobody gets it twice.
    hub.message_handle(broadcast.records_message([record(1), record(2)]))
    expected = frame(0) + frame(1) + frame(2)
    assert await first.take(timeout=1) == expected
    assert await second.take(timeout=1) == expected


async def test_queued_frames_come_out_as_one_chunk_and_then_nothing():
    subscriber = StreamSubscriber(max_frames=10)
    hub = EventHub(InMemoryChannelLayer())
    hub.subscribe(subscriber)
    hub.message_handle(broadcast.records_message([record(0, partition=1), record(5, partition=2)]))
    assert await subscriber.take(timeout=1) == frame(0, 1) + frame(5, 2)
    assert await subscriber.take(timeout=0.01) == b""


async def test_a_full_buffer_closes_the_slow_subscriber():
    hub = EventHub(InMemoryChannelLayer())
    slow = StreamSubscriber(max_frames=2)
    hub.subscribe(slow)
    hub.message_handle(broadcast.records_message([record(0), record(1), record(2)]))
    assert slow.close_reason == CLOSE_SLOW


async def test_unsubscribed_clients_get_nothing():
    hub = EventHub(InMemoryChannelLayer())
    gone = StreamSubscriber(max_frames=10)
    hub.subscribe(gone)
    hub.unsubscribe(gone)
    hub.message_handle(broadcast.records_message([record(0)]))
    assert hub.subscribers == set()
    assert await gone.take(timeout=0.01) == b""


async def test_hub_receives_through_the_layer_group():
    layer = InMemoryChannelLayer()
    hub = EventHub(layer)
    subscriber = StreamSubscriber(max_frames=10)
    hub.subscribe(subscriber)
    hub.start()
    try:
        async with asyncio.timeout(5):
            while hub.channel_name is None:
                await asyncio.sleep(0.01)
            await layer.group_send(broadcast.BROADCAST_GROUP, broadcast.records_message([record(7)]))
            await layer.group_send(
                broadcast.BROADCAST_GROUP, broadcast.heartbeat_message(consumer_id="c", lag={"t:0": 3})
            )
            assert await subscriber.take(timeout=5) == frame(7)
            while hub.heartbeat_age() is None:
                await asyncio.sleep(0.01)
        assert hub.consumer_lag == {"c": {"t:0": 3}}
    finally:
        await hub.stop()
