import asyncio
import time

from channels.layers import InMemoryChannelLayer
from prometheus_client import REGISTRY

from crm_events.core import messages as broadcast
from crm_events.core.close_reasons import CloseReason
from crm_events.core.filters import EventFilter
from crm_events.core.tokens import token_decode, token_encode
from crm_events.fanout.hub import EventHub
from crm_events.fanout.subscriber import StreamSubscriber
from tests.support.payloads import domain_payload, payload_json, serving
from tests.support.processes import async_wait_until
from tests.support.transports import RecordingTransport, delivered

TOPICS = ("t",)


def record(offset: int, *, prev: int | None = None, partition: int = 0, type_: str = "deal.won") -> dict:
    event = domain_payload(partition=partition, offset=offset, type_=type_)
    return broadcast.record_item(event, prev=offset if prev is None else prev, size=1)


def frame(offset: int, positions: dict, partition: int = 0, type_: str = "deal.won") -> bytes:
    data = payload_json(domain_payload(partition=partition, offset=offset, type_=type_))
    return f"id: {token_encode(positions)}\ndata: {data}\n\n".encode()


def hub_at(positions: dict) -> EventHub:
    hub = EventHub(InMemoryChannelLayer(), serving(*TOPICS))
    hub.positions.update(positions)
    hub.positions_ready.set()
    return hub


NO_FILTER = EventFilter()


def subscriber_at(
    hub: EventHub, max_frames: int = 10, event_filter: EventFilter = NO_FILTER, *, room: bool = True,
    chunk_bytes: int = 1 << 20,
) -> StreamSubscriber:
    subscriber = StreamSubscriber(
        topics=TOPICS, positions=hub.positions_for(TOPICS), event_filter=event_filter,
        max_frames=max_frames, transport=RecordingTransport(room=room), chunk_bytes=chunk_bytes,
    )
    hub.subscribe(subscriber)
    return subscriber


def written(subscriber: StreamSubscriber) -> bytes:
    return subscriber.transport.take()


async def test_each_event_reaches_every_subscriber_once_as_the_same_bytes():
    hub = hub_at({("t", 0): 0, ("t", 1): 0})
    first, second = subscriber_at(hub, room=False), subscriber_at(hub, room=False)
    assert first.in_sync and second.in_sync
    await delivered(hub, broadcast.records_message([record(0), record(1)]))
    # A restarted consumer replays offset 1: nobody gets it twice.
    await delivered(hub, broadcast.records_message([record(1), record(2)]))
    # Encoded once: both queues hold the very same bytes objects.
    assert all(a is b for a, b in zip(first.queued_frames(), second.queued_frames(), strict=True))
    expected = (
        frame(0, {("t", 0): 1, ("t", 1): 0})
        + frame(1, {("t", 0): 2, ("t", 1): 0})
        + frame(2, {("t", 0): 3, ("t", 1): 0})
    )
    for subscriber in (first, second):
        subscriber.transport.room = True
        assert subscriber.flush() == 3
        assert written(subscriber) == expected


async def test_ids_cover_every_partition_and_resume_exactly():
    hub = hub_at({("t", 0): 5, ("t", 1): 9})
    subscriber = subscriber_at(hub)
    await delivered(hub, broadcast.records_message([record(9, partition=1)]))
    token = written(subscriber).split(b"\n")[0].removeprefix(b"id: ").decode()
    assert token_decode(token, TOPICS) == {("t", 0): 5, ("t", 1): 10}


async def test_filtered_events_advance_the_position_but_send_nothing():
    hub = hub_at({("t", 0): 0})
    deals = subscriber_at(hub, event_filter=EventFilter(kinds=frozenset({"deal"})))
    await hub.message_handle(
        broadcast.records_message([record(0, type_="ticket.opened"), record(1, type_="deal.won")])
    )
    assert written(deals) == frame(1, {("t", 0): 2})
    assert deals.positions == {("t", 0): 2}


async def test_a_full_buffer_closes_the_slow_subscriber_at_the_last_queued_event():
    hub = hub_at({("t", 0): 0})
    slow = subscriber_at(hub, max_frames=2, room=False)
    await delivered(hub, broadcast.records_message([record(0), record(1), record(2), record(3)]))
    assert slow.close_reason == CloseReason.SLOW
    # Its resume position is right after what it was given: 2 and 3 come from Kafka later.
    assert slow.positions == {("t", 0): 2}
    # Sent away as slow, it gets none of its backlog: it resumes from the first unsent frame.
    slow.drop_queued()
    assert slow.positions == {("t", 0): 0}
    assert slow.queued == 0 and written(slow) == b""


async def test_a_subscriber_ahead_of_the_hub_drops_what_it_has_and_then_syncs():
    hub = hub_at({("t", 0): 3})
    ahead = StreamSubscriber(
        topics=TOPICS, positions={("t", 0): 5}, event_filter=EventFilter(), max_frames=10,
        transport=RecordingTransport(),
    )
    hub.subscribe(ahead)
    assert not ahead.in_sync
    await delivered(hub, broadcast.records_message([record(3), record(4), record(5)]))
    assert written(ahead) == frame(5, {("t", 0): 6})
    assert ahead.in_sync


async def test_unsubscribed_clients_get_nothing():
    hub = hub_at({("t", 0): 0})
    gone = subscriber_at(hub)
    hub.unsubscribe(gone)
    await delivered(hub, broadcast.records_message([record(0)]))
    assert hub.subscribers == set()
    assert hub.drained.is_set()
    assert written(gone) == b""


async def test_hub_receives_through_the_layer_group():
    layer = InMemoryChannelLayer()
    hub = EventHub(layer, serving(*TOPICS))
    hub.positions.update({("t", 0): 7})
    subscriber = subscriber_at(hub)
    hub.start()
    try:
        async with asyncio.timeout(5):
            while hub.subscription.channel_name not in layer.groups.get(broadcast.BROADCAST_GROUP, {}):
                await asyncio.sleep(0.01)
            await layer.group_send(broadcast.BROADCAST_GROUP, broadcast.records_message([record(7)]))
            await layer.group_send(
                broadcast.BROADCAST_GROUP, broadcast.heartbeat_message(consumer_id="c", lag={"t:0": 3})
            )
            await async_wait_until(lambda: subscriber.transport.chunks, timeout=5, what="the event")
            while hub.heartbeat_age() is None:
                await asyncio.sleep(0.01)
        assert written(subscriber) == frame(7, {("t", 0): 8})
        assert hub.consumer_lag_current(max_age=60) == {"c": {"t:0": 3}}
        # A consumer not heard from for longer (stopped, scaled down) leaves no lag behind.
        await asyncio.sleep(0.02)
        assert hub.consumer_lag_current(max_age=0.01) == {}
    finally:
        await hub.stop()


async def test_a_backlog_goes_out_in_chunks_of_bounded_size():
    one_frame = len(frame(0, {("t", 0): 1}))
    hub = hub_at({("t", 0): 0})
    subscriber = subscriber_at(hub, max_frames=100, room=False, chunk_bytes=3 * one_frame)
    await delivered(hub, broadcast.records_message([record(i) for i in range(10)]))
    subscriber.transport.room = True
    while subscriber.flush():
        pass
    chunks = subscriber.transport.chunks
    assert [len(chunk) // one_frame for chunk in chunks] == [3, 3, 3, 1]
    assert b"".join(chunks) == b"".join(frame(i, {("t", 0): i + 1}) for i in range(10))


async def test_a_heartbeat_past_the_hub_position_repairs_the_records_that_never_came():
    hub = hub_at({("t", 0): 2, ("t", 1): 4})
    repairs = []

    async def repair(position, start, stop):
        repairs.append((position, start, stop))
        hub.positions[position] = stop

    hub.repairer = repair
    heartbeat = broadcast.heartbeat_message(
        consumer_id="c", lag={}, published=[("t", 0, 5), ("t", 1, 4), ("other", 0, 9)]
    )
    await delivered(hub, heartbeat)
    # Only partition 0 is behind; a partition the hub does not serve is left alone.
    assert repairs == [(("t", 0), 2, 5)]
    await hub.message_handle(heartbeat)  # repaired: the same heartbeat again changes nothing
    assert len(repairs) == 1


async def test_the_hub_writes_each_batch_as_one_chunk_and_hands_over_when_there_is_no_room():
    hub = hub_at({("t", 0): 0})
    subscriber = subscriber_at(hub, max_frames=10)
    delivered_before = REGISTRY.get_sample_value("aetherlink_sse_events_delivered_total")

    await delivered(hub, broadcast.records_message([record(0), record(1)]))
    assert subscriber.transport.chunks == [frame(0, {("t", 0): 1}) + frame(1, {("t", 0): 2})], "one write"
    assert REGISTRY.get_sample_value("aetherlink_sse_events_delivered_total") == delivered_before + 2
    assert not subscriber.woken, "the stream's task is not woken for events already written"

    subscriber.transport.room = False  # the client stopped reading: its task takes over
    await delivered(hub, broadcast.records_message([record(2)]))
    assert len(subscriber.transport.chunks) == 1 and subscriber.woken
    assert subscriber.queued == 1

    subscriber.transport.room = True
    subscriber.close(CloseReason.SLOW)
    await delivered(hub, broadcast.records_message([record(3)]))
    assert len(subscriber.transport.chunks) == 1, "a closing stream's last frames are its session's"


async def test_batches_arriving_faster_than_a_round_of_writes_go_out_together():
    hub = hub_at({("t", 0): 0})
    subscriber = subscriber_at(hub)
    chunks = subscriber.transport.chunks

    def slow_write(chunk: bytes) -> None:
        chunks.append(chunk)
        time.sleep(0.2)  # a round of writes to many clients takes this long

    subscriber.transport.write = slow_write
    await hub.message_handle(broadcast.records_message([record(0)]))
    assert len(chunks) == 1, "light load: a batch is written as it comes"
    await hub.message_handle(broadcast.records_message([record(1)]))
    await hub.message_handle(broadcast.records_message([record(2)]))
    assert len(chunks) == 1, "the last round ended less than its own length ago: wait"
    await async_wait_until(lambda: len(chunks) > 1, timeout=5, what="the deferred write round")
    assert chunks[1:] == [frame(1, {("t", 0): 2}) + frame(2, {("t", 0): 3})], "both batches, one write"


async def test_each_round_of_writes_is_timed_and_an_idle_hub_times_none():
    def rounds() -> float:
        return REGISTRY.get_sample_value("aetherlink_hub_write_round_seconds_count") or 0.0

    hub = hub_at({("t", 0): 0})
    subscriber_at(hub)
    before = rounds()
    hub.flush_all()  # nobody was given frames
    assert rounds() == before
    await delivered(hub, broadcast.records_message([record(0)]))
    assert rounds() == before + 1
