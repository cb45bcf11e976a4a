"""Where a new stream starts: from its resume token, a time, explicit offsets, or the edge.

The result covers every partition of the stream's topics. `from=latest` (the default)
starts at the hub's own positions without asking Kafka; everything else asks
Kafka, and any position that Kafka no longer retains is moved up to the log start
and reported as a `Gap`, so the client is told what it cannot get, never silently.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from aiokafka import TopicPartition

from crm_events.exceptions import StreamRequestError
from crm_events.fanout import EventHub
from crm_events.resume import Position
from crm_events.stream_request import START_EARLIEST, StreamRequest

TOKEN_UNKNOWN_PARTITION = "resume token names partition {partition} of {topic}, which does not exist"
OFFSET_UNKNOWN_PARTITION = "partition {partition} of {topic} does not exist"


@dataclass(frozen=True, slots=True)
class Gap:
    """Offsets [first, last] of a partition that Kafka no longer retains."""

    topic: str
    partition: int
    first: int
    last: int


@dataclass
class StartPlan:
    positions: dict[Position, int]
    gaps: list[Gap] = field(default_factory=list)


def _tps(positions: dict[Position, int]) -> list[TopicPartition]:
    return [TopicPartition(*position) for position in positions]


def _as_positions(offsets: dict[TopicPartition, int]) -> dict[Position, int]:
    return {(tp.topic, tp.partition): offset for tp, offset in offsets.items()}


def _from_token(
    decoded: dict[Position, int], live: dict[Position, int], *, source: str
) -> dict[Position, int]:
    """The token's positions; topics it does not mention start live, new partitions at 0."""
    for topic, partition in decoded:
        if (topic, partition) not in live:
            message = TOKEN_UNKNOWN_PARTITION.format(partition=partition, topic=topic)
            raise StreamRequestError(message, parameter=source)
    mentioned = {topic for topic, _ in decoded}
    positions = {}
    for position, live_offset in live.items():
        default = 0 if position[0] in mentioned else live_offset
        positions[position] = decoded.get(position, default)
    return positions


async def _requested(request: StreamRequest, hub: EventHub, live: dict[Position, int]) -> dict[Position, int]:
    if request.resume_positions is not None:
        return _from_token(request.resume_positions, live, source=request.resume_source)
    if request.since_ms is not None:
        positions = _as_positions(await hub.offsets.offsets_for_time(_tps(live), request.since_ms))
    elif request.start == START_EARLIEST:
        positions = _as_positions(await hub.offsets.beginning_offsets(_tps(live)))
    else:
        positions = dict(live)
    for position, offset in request.offsets.items():
        if position not in live:
            message = OFFSET_UNKNOWN_PARTITION.format(partition=position[1], topic=position[0])
            raise StreamRequestError(message, parameter="offset")
        positions[position] = offset
    return positions


async def _clamp_to_end(positions: dict[Position, int], hub: EventHub, live: dict[Position, int]) -> None:
    """A position past Kafka's end (a topic recreated since the token was made, say) would
    silently skip every event until the offsets grew back to it: start at the end instead."""
    ahead = {p: o for p, o in positions.items() if o > live[p]}
    if ahead:
        ends = _as_positions(await hub.offsets.end_offsets(_tps(ahead)))
        for position, offset in ahead.items():
            positions[position] = min(offset, ends[position])


async def start_plan(request: StreamRequest, hub: EventHub) -> StartPlan:
    """Positions for a stream; raises StreamRequestError (400) or KafkaUnavailable."""
    live = hub.positions_for(request.topics)
    positions = await _requested(request, hub, live)
    await _clamp_to_end(positions, hub, live)
    behind = {p: o for p, o in positions.items() if o < live[p]}
    if not behind:
        return StartPlan(positions)
    retained = _as_positions(await hub.offsets.beginning_offsets(_tps(behind)))
    gaps = []
    for position, offset in behind.items():
        if offset < retained[position]:
            gaps.append(Gap(*position, first=offset, last=retained[position] - 1))
            positions[position] = retained[position]
    return StartPlan(positions, sorted(gaps, key=lambda gap: (gap.topic, gap.partition)))
