"""Catching a stream up from Kafka, then handing it to the live fan-out with no gap.

Three ways, the first that gets there: along the positions log from the stream's log point
(`log_catch_up.py`); or a round partition by partition to the hub's log point, then along
the log (`ordered_catch_up.py`); both give short ids and join the hub exactly where it
stands. Failing those (the log does not account for the hub's positions just then, or
cannot be written), by positions, with full-length ids: the client reads its partitions
from Kafka until it stands at or past the hub's position in every one of them; then,
with no `await` in between, it joins the hub. From that moment every event the hub
passes on reaches it, and any the replay already gave it is dropped by offset. So the
seam has neither gap nor duplicate, whichever way it was reached.

A stream whose partitions are no longer the hub's (one was added to the topic, or
removed, since the stream was positioned) is sent to resume with `resync`: its id
then gets a start plan that covers the new partitions from their beginning.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable

from aiokafka import TopicPartition

from crm_events import metrics
from crm_events.config import KafkaConfig
from crm_events.core.close_reasons import CloseReason
from crm_events.core.live_event import LiveEvent
from crm_events.core.position_log import LogPoint
from crm_events.exceptions import KafkaUnavailable
from crm_events.fanout.hub import EventHub
from crm_events.fanout.subscriber import StreamSubscriber
from crm_events.kafka.replay import ReplayReader
from crm_events.streams.log_catch_up import replay_along_log
from crm_events.streams.ordered_catch_up import round_plan, round_replay

logger = logging.getLogger(__name__)

# Rounds to the hub's log point and along the log from it, before catching up by positions.
ROUNDS = 3


def _partitions_changed(hub: EventHub, subscriber: StreamSubscriber) -> bool:
    if hub.positions_for(subscriber.topics).keys() == subscriber.positions.keys():
        return False
    subscriber.close(CloseReason.RESYNC)
    return True


def _lagging(hub: EventHub, subscriber: StreamSubscriber) -> list[TopicPartition]:
    mine = subscriber.positions
    return [
        TopicPartition(*position)
        for position, offset in hub.positions_for(subscriber.topics).items()
        if mine.get(position, 0) < offset
    ]


async def replay_until_live(
    hub: EventHub, subscriber: StreamSubscriber, config: KafkaConfig, *, is_cancelled: Callable[[], bool],
    point: LogPoint | None = None,
) -> AsyncIterator[bytes]:
    """Yield replayed frames (one chunk per fetch) until caught up; then subscribe.

    With short ids first: along the log from a log `point`; from other positions, a round
    partition by partition to the hub's log point, then along the log from there. If that
    does not get the stream to the hub (the log does not account for the hub's positions,
    say), by positions, with full-length ids."""
    if _partitions_changed(hub, subscriber):
        return
    for _ in range(ROUNDS):
        if point is not None:
            async for chunk in replay_along_log(hub, subscriber, config, point, is_cancelled=is_cancelled):
                yield chunk
        if subscriber.in_sync or is_cancelled() or _partitions_changed(hub, subscriber):
            return
        try:
            plan = await round_plan(hub, subscriber)
        except KafkaUnavailable as error:  # the log refuses this process's records, say
            logger.warning("catching up by positions, with full-length ids: %s", error)
            break
        if plan is None:
            break
        async for chunk in round_replay(plan, subscriber, config, is_cancelled=is_cancelled):
            yield chunk
        point = plan.target if isinstance(plan.target, LogPoint) else None
    if subscriber.in_sync or is_cancelled() or _partitions_changed(hub, subscriber):
        return
    lagging = _lagging(hub, subscriber)
    if not lagging:
        hub.subscribe(subscriber)
        return
    # Assign every partition of the stream: the hub may move ahead in any of them meanwhile.
    starts = {TopicPartition(*position): offset for position, offset in subscriber.positions.items()}
    async with ReplayReader(config, starts) as reader:
        while not is_cancelled():
            chunk = await _replay_batch(reader, subscriber, lagging)
            if chunk:
                yield chunk
            if _partitions_changed(hub, subscriber):
                return
            lagging = _lagging(hub, subscriber)
            if not lagging:
                # Join while still inside the reader: closing it awaits, and the hub
                # may pass on events meanwhile that this client must not miss.
                hub.subscribe(subscriber)
                return


async def _replay_batch(
    reader: ReplayReader, subscriber: StreamSubscriber, lagging: list[TopicPartition]
) -> bytes:
    frames = []
    for records in (await reader.fetch(lagging)).values():
        for record in records:
            event = LiveEvent.of_record(record, reader.wire)
            if subscriber.advance(event) and subscriber.event_filter.matches(event.payload):
                frames.append(event.frame(subscriber.token()))
    for tp in lagging:
        # Skip offsets that hold no record (transaction markers, compacted holes).
        position = (tp.topic, tp.partition)
        subscriber.position_raise(position, await reader.next_offset(tp))
    if frames:
        metrics.events_delivered(len(frames))
        subscriber.delivered += len(frames)
    return b"".join(frames)
