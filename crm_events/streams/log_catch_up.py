"""Catching a stream up along the positions log, so its replayed frames carry short ids.

A stream that resumes from a log point is given what it missed in the order the live
path passed it on: batch by batch, as the positions log lists them, each record read
from Kafka by its position. Each frame's id is then the log point right after it, the
same short id a live stream got for the same event. When what is left fits one read, the
stream opens a tap on the hub (`fanout/live_tap.py`), reads the log up to where the tap
started, then takes what the tap kept meanwhile, and joins the hub once the tap is empty,
with no `await` in between, so the seam has neither gap nor duplicate (a stream that only
chased the hub would be one batch behind after every read under a steady flow). Records a
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
from crm_events.fanout.live_tap import LiveTap
from crm_events.fanout.subscriber import StreamSubscriber
from crm_events.kafka.replay import ReplayReader
from crm_events.registry import registry_decoder

# Log records per round, and records read from Kafka per round at most (a round's records are
# held until its frames are built).
WINDOW_BATCHES = 64
WINDOW_RECORDS = 5000
# Events a tap holds while its stream reads the last stretch from Kafka (see live_tap.py).
TAP_EVENTS = 20000
# How long a stream whose id is ahead of this process's hub waits for the hub to get there.
AHEAD_WAIT = 5.0
AHEAD_POLL = 0.02


async def replay_along_log(
    hub: EventHub, subscriber: StreamSubscriber, config: KafkaConfig, point: LogPoint,
    *, is_cancelled: Callable[[], bool],
) -> AsyncIterator[bytes]:
    """Yield replayed frames until the stream joins the hub in sync, or the log cannot take it
    further (then the caller goes on by positions)."""
    walk = _LogWalk(hub, subscriber, config)
    subscriber.token_known(log_token_encode(point, log_topic=walk.log_topic))
    # The stream has had batch `point.batch`, whole or (with a segment) in part: what is left
    # of it is read again, and what it already had skipped by offset.
    at, walk.following = point.batch, point.batch if point.segment is not None else point.batch + 1
    while not is_cancelled():
        hub_at = await _hub_batch(hub, at)
        if hub_at is None:
            return
        if walk.following > hub_at:
            if subscriber.positions == hub.positions_for(subscriber.topics):
                hub.subscribe(subscriber)
            return
        if hub_at - walk.following < WINDOW_BATCHES:
            # One read from the hub: join it through a tap rather than chase it.
            async for chunk in walk.join_through_tap(is_cancelled):
                yield chunk
            if subscriber.in_sync or walk.stopped:
                return
            at = walk.following - 1
            continue
        replayed = await walk.window(hub_at)
        if replayed is None:
            return  # the log no longer holds what comes next
        at = walk.following - 1
        if replayed:
            yield replayed


class _LogWalk:
    """A stream's way along the positions log: `following` is the next batch it needs."""

    def __init__(self, hub: EventHub, subscriber: StreamSubscriber, config: KafkaConfig) -> None:
        self.hub, self.subscriber, self.config = hub, subscriber, config
        self.log_topic = config.positions_topic
        self.following = 0
        self.stopped = False  # the log or the tap cannot take it further

    async def window(self, last: int) -> bytes | None:
        """Replay one window of batches from `following` towards `last`; None if the log no
        longer holds them."""
        records = await _window(self.hub, self.following, last)
        if not records:
            return None
        chunk = await _replay_window(records, self.subscriber, self.config, self.log_topic)
        self.following = records[-1][0] + 1
        self.subscriber.token_known(log_token_encode(LogPoint(records[-1][0]), log_topic=self.log_topic))
        return chunk

    async def join_through_tap(self, is_cancelled: Callable[[], bool]) -> AsyncIterator[bytes]:
        """Read the log up to where the tap started, then what the tap holds, and join the hub
        (see live_tap.py). Returns without joining when the tap overflowed (the caller goes on
        along the log) or cannot say where it started (`stopped`)."""
        tap = self.hub.tap_open(self.subscriber.topics, limit=TAP_EVENTS)
        try:
            start = await _tap_start(tap)
            if start is None:
                self.stopped = True
                return
            while self.following <= start.batch and not (is_cancelled() or tap.overflowed):
                chunk = await self.window(start.batch)
                if chunk is None:
                    self.stopped = True
                    return
                if chunk:
                    yield chunk
            if self.subscriber.positions != tap.positions:
                self.stopped = not tap.overflowed
                return
            async for chunk in self._tap_drain(tap, is_cancelled):
                yield chunk
        finally:
            self.hub.tap_close(tap)

    async def _tap_drain(self, tap: LiveTap, is_cancelled: Callable[[], bool]) -> AsyncIterator[bytes]:
        while not (is_cancelled() or tap.overflowed):
            entries = tap.take()
            if not entries:
                # No `await` since the tap was last emptied: the hub passed on nothing else.
                if self.subscriber.positions == self.hub.positions_for(self.subscriber.topics):
                    self.hub.subscribe(self.subscriber)
                else:
                    self.stopped = True  # the hub moved without an event (a partition added, say)
                return
            chunk = tap_frames(entries, self.subscriber)
            if chunk:
                yield chunk


async def _tap_start(tap: LiveTap) -> LogPoint | None:
    """The whole batch of the log after which the tap started, once the hub ended its current
    one (a repair inside a batch may take long); None if it did not, or not at a log point."""
    try:
        async with asyncio.timeout(AHEAD_WAIT):
            await tap.started.wait()
    except TimeoutError:
        return None
    return tap.point


def tap_frames(entries: list[tuple[LiveEvent, str]], subscriber: StreamSubscriber) -> bytes:
    """The frames of the tapped events this stream has not had and its filter matches, each
    with the id the hub gave it."""
    frames = [
        event.frame(token) for event, token in entries
        if subscriber.advance(event) and subscriber.event_filter.matches(event.payload)
    ]
    subscriber.token_known(entries[-1][1])
    if frames:
        metrics.events_delivered(len(frames))
    return b"".join(frames)


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
            pending = [tp for tp in pending if await reader.next_offset(tp) < stops[tp]]
    return found
