"""The hub's place in the positions log: short ids while the log accounts for its positions,
batches it missed read back in the log's order, full ids whenever it cannot account."""

from __future__ import annotations

import asyncio

from channels.layers import InMemoryChannelLayer

from crm_events.core import messages as broadcast
from crm_events.core.filters import EventFilter
from crm_events.core.log_tokens import log_token_encode, resume_id_decode
from crm_events.core.position_log import Amended, LogPoint, LogRecord, Segment
from crm_events.core.tokens import token_decode
from crm_events.fanout.hub import EventHub
from crm_events.fanout.subscriber import StreamSubscriber
from tests.support.payloads import domain_payload, serving
from tests.support.transports import RecordingTransport

TOPICS = ("t",)
P0, P1 = ("t", 0), ("t", 1)


def hub_at(**positions: int) -> EventHub:
    hub = EventHub(InMemoryChannelLayer(), serving(*TOPICS))
    hub.positions.update({P0: positions.get("p0", 0), P1: positions.get("p1", 0)})
    hub.positions_ready.set()
    return hub


def batch(number: int, *offsets: tuple[int, int], snapshot: dict | None = None) -> dict:
    """A numbered records message: (partition, offset) items, one run per partition."""
    items, runs = [], []
    for partition, offset in offsets:
        if not runs or runs[-1] != partition:
            runs.append(partition)
        item = broadcast.record_item(domain_payload(partition=partition, offset=offset), prev=offset, size=1)
        item["seg"] = len(runs) - 1
        items.append(item)
    return broadcast.records_message(items, batch=number, snapshot=snapshot)


def subscriber_of(hub: EventHub) -> StreamSubscriber:
    subscriber = StreamSubscriber(
        topics=TOPICS, positions=hub.positions_for(TOPICS), event_filter=EventFilter(), max_frames=100,
        transport=RecordingTransport(),
    )
    hub.subscribe(subscriber)
    return subscriber


def ids_of(subscriber: StreamSubscriber) -> list[str]:
    """The `id:` of every frame written to the subscriber's connection, in order."""
    written = b"".join(subscriber.transport.chunks)  # type: ignore[attr-defined]
    return [line.removeprefix(b"id: ").decode() for line in written.split(b"\n") if line.startswith(b"id: ")]


def short(hub: EventHub, point: LogPoint) -> str:
    return log_token_encode(point, log_topic=hub.config.positions_topic)


def test_frames_carry_the_log_point_after_them_once_a_snapshot_covers_every_partition():
    async def scenario():
        hub = hub_at()
        subscriber = subscriber_of(hub)
        await hub.records_handle(batch(4, (0, 0), (0, 1), (1, 0), snapshot={P0: 0, P1: 0}))
        assert ids_of(subscriber) == [
            short(hub, LogPoint(4, 0, 0)), short(hub, LogPoint(4, 0, 1)), short(hub, LogPoint(4, 1, 0)),
        ]
        assert subscriber.token() == short(hub, LogPoint(4))

    asyncio.run(scenario())


def test_without_a_snapshot_of_every_partition_ids_spell_positions_out():
    async def scenario():
        hub = hub_at()
        subscriber = subscriber_of(hub)
        await hub.records_handle(batch(4, (0, 0), snapshot={P0: 0}))
        assert token_decode(ids_of(subscriber)[0], TOPICS) == {P0: 1, P1: 0}

    asyncio.run(scenario())


def test_batches_missed_are_read_from_the_log_and_kafka_in_the_log_order():
    async def scenario():
        hub = hub_at()
        repaired: list[tuple] = []

        async def log_records(first: int, last: int) -> list[tuple[int, LogRecord]]:
            assert (first, last) == (5, 6)
            return [(5, LogRecord("c", (Segment("t", 1, 0, 3),))), (6, LogRecord("", registered={P0: 9}))]

        async def repair(position, start: int, stop: int) -> None:
            repaired.append((position, start, stop))
            for offset in range(start, stop):
                hub.event_dispatch(domain_payload(partition=position[1], offset=offset))

        hub.log_records, hub.repairer = log_records, repair
        await hub.records_handle(batch(4, (0, 0), snapshot={P0: 0, P1: 0}))
        subscriber = subscriber_of(hub)
        await hub.records_handle(batch(7, (0, 1)))
        assert repaired == [(P1, 0, 3)]
        assert hub.positions == {P0: 2, P1: 3}
        assert ids_of(subscriber)[-1] == short(hub, LogPoint(7, 0, 1))

    asyncio.run(scenario())


def test_an_unnumbered_batch_gives_the_point_amended_in_its_partitions_until_the_log_catches_up():
    async def scenario():
        hub = hub_at()
        await hub.records_handle(batch(1, (0, 0), snapshot={P0: 0, P1: 0}))
        subscriber = subscriber_of(hub)
        await hub.records_handle(broadcast.records_message(
            [broadcast.record_item(domain_payload(partition=1, offset=0), prev=0, size=1)]
        ))
        amended = resume_id_decode(ids_of(subscriber)[-1], TOPICS, log_topic=hub.config.positions_topic)
        assert amended == Amended(LogPoint(1), ((P1, 1),))
        assert len(ids_of(subscriber)[-1]) <= 64
        # The consumer's next batch lists the record the layer brought unnumbered: in step again.
        await hub.records_handle(batch(2, (1, 1), snapshot={P0: 1, P1: 1}))
        assert ids_of(subscriber)[-1] == short(hub, LogPoint(2, 0, 1))

    asyncio.run(scenario())
