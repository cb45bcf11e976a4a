"""Catching a stream up partition by partition, with short ids, from positions no log point names.

A stream that starts from `earliest`, a time, explicit offsets or a version 1 id has
positions of its own. It is caught up in a round: from where it stands (`start`) to where
the hub stands (`target`), both named in the positions log (the hub's log point, or a record
the web process registers), reading its partitions one after another in (topic, partition)
order, each from its start to its target. So where the stream stands is always "at the
target before this partition, at this offset in it, at the start after it": a version 3 id
of fixed size (`core/position_log.py` `Between`). A round that ends at the hub's log point
goes on along the log from there (`log_catch_up.py`), which joins the hub exactly.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from aiokafka import TopicPartition

from crm_events import metrics
from crm_events.config import KafkaConfig
from crm_events.core.live_event import LiveEvent
from crm_events.core.log_tokens import between_token_encode, log_token_encode
from crm_events.core.position_log import Between, LogPoint, Ref
from crm_events.core.positions import Position
from crm_events.exceptions import KafkaUnavailable
from crm_events.fanout.hub import EventHub
from crm_events.fanout.subscriber import StreamSubscriber
from crm_events.kafka.replay import ReplayReader

logger = logging.getLogger(__name__)

# Ids longer than this spell positions out: the session registers them instead where it can wait.
SHORT_TOKEN_CHARS = 64


async def positions_named(hub: EventHub, positions: dict[Position, int], topics: tuple[str, ...]) -> Ref:
    """A log reference to `positions`: the hub's log point if they are the hub's, else a
    registered record (raises KafkaUnavailable if it cannot be written)."""
    point = hub.cursor.point()
    if point is not None and positions == hub.positions_for(topics):
        return point
    return await hub.registry.register(positions)


async def short_token(hub: EventHub, subscriber: StreamSubscriber, *, log_topic: str) -> str:
    """The stream's resume id, short: when its own is a full-length one (positions no log point
    names), those positions registered in the log; the full one only if that fails."""
    token = subscriber.token()
    positions = dict(subscriber.positions)
    if len(token) <= SHORT_TOKEN_CHARS or not positions:
        return token
    try:
        ref = await positions_named(hub, positions, subscriber.topics)
    except KafkaUnavailable as error:
        logger.warning("positions not registered (%s); this id spells them out", error)
        return token
    if isinstance(ref, LogPoint):
        return log_token_encode(ref, log_topic=log_topic)
    first = min(positions)
    return between_token_encode(Between(ref, ref, *first, positions[first]), log_topic=log_topic)


@dataclass(frozen=True)
class Round:
    """From where a stream stands to where the hub stood when the round was planned."""

    start: Ref
    target: Ref
    target_positions: dict[Position, int]


async def round_plan(hub: EventHub, subscriber: StreamSubscriber) -> Round | None:
    """A round to where the hub stands now; None if the stream is ahead of the hub somewhere
    (a round only moves forward) or already where the hub is."""
    topics = subscriber.topics
    target = hub.positions_for(topics)  # read with the hub's point: no await in between
    mine = dict(subscriber.positions)
    if mine == target or any(mine[p] > offset for p, offset in target.items()):
        return None
    target_ref = await positions_named(hub, target, topics)
    return Round(await positions_named(hub, mine, topics), target_ref, target)


async def round_replay(
    plan: Round, subscriber: StreamSubscriber, config: KafkaConfig, *, is_cancelled: Callable[[], bool]
) -> AsyncIterator[bytes]:
    """Replay the round partition by partition; the stream's positions end at its target."""
    target, log_topic = plan.target_positions, config.positions_topic
    lagging = sorted(p for p, offset in target.items() if subscriber.positions[p] < offset)

    def token(position: Position, at: int) -> str:
        return between_token_encode(Between(plan.start, plan.target, *position, at), log_topic=log_topic)

    starts = {TopicPartition(*p): subscriber.positions[p] for p in lagging}
    async with ReplayReader(config, starts) as reader:
        ends = await reader.end_offsets(list(starts))
        for position in lagging:
            tp = TopicPartition(*position)
            stop = min(target[position], ends[tp])
            while not is_cancelled() and await reader.next_offset(tp) < stop:
                frames = []
                for record in (await reader.fetch([tp])).get(tp, []):
                    if record.offset >= stop:
                        break  # the next round's
                    event = LiveEvent.of_record(record, reader.wire)
                    if subscriber.advance(event) and subscriber.event_filter.matches(event.payload):
                        frames.append(event.frame(token(position, record.offset + 1)))
                subscriber.token_known(token(position, subscriber.positions[position]))
                if frames:
                    metrics.events_delivered(len(frames))
                    subscriber.delivered += len(frames)
                    yield b"".join(frames)
            if is_cancelled():
                return
            subscriber.position_raise(position, target[position])
            subscriber.token_known(token(position, target[position]))
