"""Catching a stream up along the positions log, so its replayed frames carry short ids.

A stream that resumes from a log point is given what it missed in the order the live
path passed it on: batch by batch, as the positions log lists them, each record read
from Kafka by its position. Each frame's id is then the log point right after it, the
same short id a live stream got for the same event. Once the stream stands where the
hub stands (the end of the hub's last batch, every partition equal), it joins the hub
with no `await` in between, so the seam has neither gap nor duplicate. Records a
restarted consumer published twice come twice in the log and are skipped by offset,
as the hub skips them.

When the hub has no log point of its own (the log does not account for its positions
right now) this returns without joining, and the positions-based catch-up
(`catch_up.py`) finishes the job with full-length ids.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

from aiokafka import TopicPartition

from crm_events import metrics
from crm_events.config import KafkaConfig
from crm_events.core.live_event import LiveEvent
from crm_events.core.log_tokens import log_token_encode
from crm_events.core.position_log import LogPoint, LogRecord
from crm_events.core.positions import Position
from crm_events.core.records import KafkaRecord
from crm_events.fanout.hub import EventHub
from crm_events.fanout.subscriber import StreamSubscriber
from crm_events.kafka.replay import ReplayReader
from crm_events.registry import registry_decoder

# Log records per round, and records read from Kafka per round at most (a round's records are
# held until its frames are built).
WINDOW_BATCHES = 64
WINDOW_RECORDS = 5000
# How long a stream whose id is ahead of this process's hub waits for the hub to get there.
AHEAD_WAIT = 5.0
AHEAD_POLL = 0.02


async def replay_along_log(
    hub: EventHub, subscriber: StreamSubscriber, config: KafkaConfig, point: LogPoint,
    *, is_cancelled: Callable[[], bool],
) -> AsyncIterator[bytes]:
    """Yield replayed frames until the stream joins the hub in sync, or the log cannot take it
    further (then the caller goes on by positions)."""
    log_topic = config.positions_topic
    subscriber.token_known(log_token_encode(point, log_topic=log_topic))
    # The stream has had batch `point.batch`, whole or (with a segment) in part: what is left
    # of it is read again, and what it already had skipped by offset.
    at, following = point.batch, point.batch if point.segment is not None else point.batch + 1
    while not is_cancelled():
        hub_at = await _hub_batch(hub, at)
        if hub_at is None:
            return
        if following > hub_at:
            if subscriber.positions == hub.positions_for(subscriber.topics):
                hub.subscribe(subscriber)
            return
        records = await _window(hub, following, hub_at)
        if not records:
            return  # the log no longer holds what comes next
        chunk = await _replay_window(records, subscriber, config, log_topic)
        at = records[-1][0]
        following = at + 1
        subscriber.token_known(log_token_encode(LogPoint(at), log_topic=log_topic))
        if chunk:
            yield chunk


async def _hub_batch(hub: EventHub, at: int) -> int | None:
    """The hub's last whole batch, once it is at or past `at`; None if the hub has no log point."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + AHEAD_WAIT
    while True:
        point = hub.cursor.point()
        if point is None:
            return None
        hub_at = point.batch if point.segment is None else point.batch - 1
        if hub_at >= at or loop.time() > deadline:
            return hub_at if hub_at >= at else None
        await asyncio.sleep(AHEAD_POLL)  # the hub has not received what another process has


async def _window(hub: EventHub, first: int, last: int) -> list[tuple[int, LogRecord]]:
    records = await hub.position_log.records(first, min(last, first + WINDOW_BATCHES - 1))
    kept: list[tuple[int, LogRecord]] = []
    count = 0
    for offset, record in records:
        count += sum(segment.end - segment.start for segment in record.segments)
        if kept and count > WINDOW_RECORDS:
            break
        kept.append((offset, record))
    return kept


async def _replay_window(
    records: list[tuple[int, LogRecord]], subscriber: StreamSubscriber, config: KafkaConfig, log_topic: str
) -> bytes:
    ranges = _ranges(records, subscriber)
    fetched = await _fetch(ranges, config) if ranges else {}
    frames = []
    for number, record in records:
        for index, segment in enumerate(record.segments):
            if segment.topic not in subscriber.topics:
                continue
            for kafka_record in fetched.get(segment.position, []):
                if not segment.start <= kafka_record.offset < segment.end:
                    continue
                event = LiveEvent.of_record(kafka_record, registry_decoder())
                if subscriber.advance(event) and subscriber.event_filter.matches(event.payload):
                    point = LogPoint(number, index, kafka_record.offset)
                    frames.append(event.frame(log_token_encode(point, log_topic=log_topic)))
            subscriber.position_raise(segment.position, segment.end)
    if frames:
        metrics.events_delivered(len(frames))
        subscriber.delivered += len(frames)
    return b"".join(frames)


def _ranges(
    records: list[tuple[int, LogRecord]], subscriber: StreamSubscriber
) -> dict[Position, tuple[int, int]]:
    """Per partition of the stream, the offsets the window's segments hold that it still needs."""
    positions = subscriber.positions
    ranges: dict[Position, tuple[int, int]] = {}
    for _number, record in records:
        for segment in record.segments:
            start = max(segment.start, positions.get(segment.position, 0))
            if segment.topic not in subscriber.topics or start >= segment.end:
                continue
            low, high = ranges.get(segment.position, (start, segment.end))
            ranges[segment.position] = (min(low, start), max(high, segment.end))
    return ranges


async def _fetch(
    ranges: dict[Position, tuple[int, int]], config: KafkaConfig
) -> dict[Position, list[KafkaRecord]]:
    """Kafka's records in each range, in offset order (what retention removed is simply absent)."""
    starts = {TopicPartition(*position): low for position, (low, _high) in ranges.items()}
    found: dict[Position, list[KafkaRecord]] = {position: [] for position in ranges}
    async with ReplayReader(config, starts) as reader:
        ends = await reader.end_offsets(list(starts))
        # Up to the range's end, or the log's if it ends before (a log that started over).
        stops = {tp: min(ranges[(tp.topic, tp.partition)][1], ends[tp]) for tp in starts}
        pending = list(starts)
        while pending:
            for tp, records in (await reader.fetch(pending)).items():
                found[(tp.topic, tp.partition)].extend(records)
            pending = [tp for tp in pending if await reader.position(tp) < stops[tp]]
    return found
