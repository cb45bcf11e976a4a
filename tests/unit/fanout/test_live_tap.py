"""The hub's tap: what a stream about to join is given from a whole batch of the log on."""

from __future__ import annotations

import asyncio

from hypothesis import given, settings
from hypothesis import strategies as st

from crm_events.core import messages as broadcast
from crm_events.core.filters import EventFilter
from crm_events.core.position_log import LogPoint
from crm_events.core.tokens import token_decode
from crm_events.fanout.live_tap import LiveTap
from crm_events.fanout.subscriber import StreamSubscriber
from crm_events.streams.log_catch_up import tap_frames
from tests.support.payloads import domain_payload
from tests.support.transports import RecordingTransport
from tests.unit.fanout.test_hub_position_log import P0, P1, TOPICS, batch, hub_at, ids_of, short
from tests.unit.fanout.test_hub_position_log import subscriber_of as in_sync_subscriber


def subscriber_of(hub, event_filter: EventFilter) -> StreamSubscriber:
    subscriber = StreamSubscriber(
        topics=TOPICS, positions=hub.positions_for(TOPICS), event_filter=event_filter, max_frames=100,
        transport=RecordingTransport(),
    )
    hub.subscribe(subscriber)
    return subscriber


def typed_batch(number: int, items: list[tuple[int, int, str]]) -> dict:
    """A numbered records message of (partition, offset, type) items, one run per partition."""
    records, runs = [], []
    for partition, offset, type_ in items:
        if not runs or runs[-1] != partition:
            runs.append(partition)
        item = broadcast.record_item(
            domain_payload(partition=partition, offset=offset, type_=type_), prev=offset, size=1)
        item["seg"] = len(runs) - 1
        records.append(item)
    return broadcast.records_message(records, batch=number)


def offsets_of(tap: LiveTap) -> list[tuple[int, int, str]]:
    return [(event.partition, event.offset, token) for event, token in tap.take()]


def test_a_tap_opened_between_batches_starts_at_once_with_the_hubs_point_and_positions():
    async def scenario():
        hub = hub_at()
        await hub.records_handle(batch(4, (0, 0), (1, 0), snapshot={P0: 0, P1: 0}))
        tap = hub.tap_open(TOPICS, limit=10)
        assert tap.started.is_set()
        assert (tap.point, tap.positions) == (LogPoint(4), {P0: 1, P1: 1})
        await hub.records_handle(batch(5, (0, 1), (1, 1)))
        # Each event with the id an in-sync stream got for it: the same frames, the same ids.
        live = in_sync_subscriber(hub)
        await hub.records_handle(batch(6, (0, 2)))
        assert offsets_of(tap) == [
            (0, 1, short(hub, LogPoint(5, 0, 1))), (1, 1, short(hub, LogPoint(5, 1, 1))),
            (0, 2, short(hub, LogPoint(6, 0, 2))),
        ]
        assert ids_of(live) == [short(hub, LogPoint(6, 0, 2))]
        assert tap.take() == []

    asyncio.run(scenario())


def test_a_tap_opened_inside_a_batch_starts_where_that_batch_ends():
    async def scenario():
        hub = hub_at()
        await hub.records_handle(batch(4, (0, 0), snapshot={P0: 0, P1: 0}))
        taps: list[LiveTap] = []

        async def repair(position, start: int, stop: int) -> None:
            # Inside batch 5, between its records: the hub is passing the batch on.
            taps.append(hub.tap_open(TOPICS, limit=10))
            for offset in range(start, stop):
                hub.event_dispatch(domain_payload(partition=position[1], offset=offset))

        hub.repairer = repair
        message = batch(5, (1, 2))
        await hub.records_handle(message)  # P1 was at 0: offsets 0 and 1 are repaired first
        (tap,) = taps
        assert tap.started.is_set()
        assert tap.take() == []  # nothing of batch 5: the tap starts after it
        assert tap.positions == hub.positions_for(TOPICS) == {P0: 1, P1: 3}
        await hub.records_handle(batch(6, (0, 1)))
        assert [(partition, offset) for partition, offset, _token in offsets_of(tap)] == [(0, 1)]

    asyncio.run(scenario())


def test_a_tap_without_a_log_point_starts_with_none_and_streams_go_on_without_it():
    async def scenario():
        hub = hub_at()  # no snapshot has come: the log does not account for the hub's positions
        tap = hub.tap_open(TOPICS, limit=10)
        assert tap.started.is_set() and tap.point is None
        await hub.records_handle(batch(1, (0, 0)))
        (event, token), = tap.take()
        assert token_decode(token, TOPICS) == {P0: 1, P1: 0}

    asyncio.run(scenario())


def test_a_full_tap_forgets_what_it_held_and_says_so_and_a_closed_one_takes_nothing():
    async def scenario():
        hub = hub_at()
        await hub.records_handle(batch(4, (0, 0), snapshot={P0: 0, P1: 0}))
        full, closed = hub.tap_open(TOPICS, limit=2), hub.tap_open(TOPICS, limit=10)
        hub.tap_close(closed)
        hub.tap_close(closed)  # twice: a stream's cleanup may run after the hub's
        await hub.records_handle(batch(5, (0, 1), (0, 2), (0, 3)))
        assert full.overflowed and full.take() == []
        assert closed.take() == []
        assert hub.taps == [full]

    asyncio.run(scenario())


def test_a_tap_keeps_only_its_topics():
    async def scenario():
        hub = hub_at()
        await hub.records_handle(batch(4, (0, 0), snapshot={P0: 0, P1: 0}))
        tap = hub.tap_open(("other",), limit=10)
        await hub.records_handle(batch(5, (0, 1)))
        assert tap.take() == []

    asyncio.run(scenario())


# Each batch: the partitions (0 or 1) of its records, and each record's type.
BATCHES = st.lists(
    st.lists(st.tuples(st.integers(0, 1), st.sampled_from(["deal.won", "deal.lost", "contact"])), max_size=6),
    min_size=1, max_size=8,
)


@settings(max_examples=60, deadline=None)
@given(batches=BATCHES, opened_before=st.integers(0, 8), kinds=st.sets(st.sampled_from(["deal", "contact"])))
def test_a_stream_joining_through_a_tap_gets_the_bytes_a_live_stream_got_and_stands_where_the_hub_does(
    batches, opened_before, kinds
):
    async def scenario():
        hub = hub_at()
        await hub.records_handle(batch(1, snapshot={P0: 0, P1: 0}))
        event_filter = EventFilter(kinds=frozenset(kinds))
        next_offset = {0: 0, 1: 0}
        live = tap = None
        for number, records in enumerate(batches, start=2):
            if number - 2 == min(opened_before, len(batches) - 1):
                tap = hub.tap_open(TOPICS, limit=100)
                live = subscriber_of(hub, event_filter)
            items = []
            for partition, type_ in sorted(records, key=lambda record: record[0]):
                items.append((partition, next_offset[partition], type_))
                next_offset[partition] += 1
            await hub.records_handle(typed_batch(number, items))
        joining = StreamSubscriber(
            topics=TOPICS, positions=dict(tap.positions), event_filter=event_filter, max_frames=100,
            transport=RecordingTransport(),
        )
        hub.flush_all()  # a round of writes may have been put off to its timer
        entries = tap.take()
        given_bytes = tap_frames(entries, joining) if entries else b""
        assert given_bytes == b"".join(live.transport.chunks)
        # Where the hub stands: it joins in sync, and its ids are the hub's from then on.
        assert joining.positions == hub.positions_for(TOPICS)
        hub.subscribe(joining)
        assert joining.in_sync and joining.token() == live.token()

    asyncio.run(scenario())
