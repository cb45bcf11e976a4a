"""Where a new stream starts: from its resume token, a time, explicit offsets, or the edge.

The result covers every partition of the stream's topics. `from=latest` (the default)
starts at the hub's own positions without asking Kafka; everything else asks
Kafka, and the client is told, never silently, what it cannot get:

- a position below what Kafka still retains moves up to the log start, reported as a
  `Gap` (reason `retention`);
- a token position past its partition's end (the topic was deleted and recreated
  since the token was made, say) restarts at the log start: everything in the new log
  is news to the client. Reported as a `Reset` (reason `reset`);
- a token naming a partition that no longer exists drops it, reported as a `Reset`
  with no end and no restart. A browser would give up for good on a 400.

A token made before partitions were added to its topic covers them from offset 0.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from aiokafka import TopicPartition

from crm_events.core.position_log import Amended, Between, LogPoint
from crm_events.core.positions import Position
from crm_events.core.stream_frames import Gap, Reset
from crm_events.exceptions import StreamRequestError
from crm_events.fanout.hub import EventHub
from crm_events.fanout.partitions import ON_DEMAND_MIN_INTERVAL
from crm_events.streams.request import START_EARLIEST, StreamRequest

logger = logging.getLogger(__name__)

OFFSET_UNKNOWN_PARTITION = "partition {partition} of {topic} does not exist"


@dataclass
class StartPlan:
    positions: dict[Position, int]
    gaps: list[Gap] = field(default_factory=list)
    resets: list[Reset] = field(default_factory=list)
    # The resume id's log point, when the stream can catch up along the log from it.
    point: LogPoint | None = None


def _tps(positions: dict[Position, int]) -> list[TopicPartition]:
    return [TopicPartition(*position) for position in positions]


def _as_positions(offsets: dict[TopicPartition, int]) -> dict[Position, int]:
    return {(tp.topic, tp.partition): offset for tp, offset in offsets.items()}


def _from_token(
    decoded: dict[Position, int], live: dict[Position, int]
) -> tuple[dict[Position, int], list[Reset]]:
    """The token's positions, and a `Reset` for each partition it names that is gone. Topics it
    does not mention start live; partitions of its topics it does not name (added since) at 0."""
    gone = [
        Reset(*position, requested=offset, end=None, restart=None)
        for position, offset in sorted(decoded.items())
        if position not in live
    ]
    mentioned = {topic for topic, _ in decoded}
    positions = {}
    for position, live_offset in live.items():
        default = 0 if position[0] in mentioned else live_offset
        positions[position] = decoded.get(position, default)
    return positions, gone


async def _resolved(
    point: LogPoint | Between | Amended, hub: EventHub, live: dict[Position, int]
) -> dict[Position, int] | None:
    """The positions a version 2, 3 or 4 id stands for, read from the positions log; None if the
    log no longer holds what it names. Such an id is older than the data it numbered (the log
    is kept as long as the topics): like a version 1 token that old, it then starts at offset
    0, which the retention check moves to the log start with a `gap` frame."""
    state = await hub.position_log.point_state(point, live.keys())
    if state is None:
        logger.warning("resume id names %s, which the positions log does not hold; "
                       "replaying what Kafka retains", point)
    return state


def _named(request: StreamRequest) -> set[Position]:
    return set(request.resume_positions or ()) | set(request.offsets)


async def _live(request: StreamRequest, hub: EventHub) -> dict[Position, int]:
    """The hub's positions; if the request names partitions it does not know, it looks at
    Kafka first (a partition added moments ago, that this process has not seen yet)."""
    live = hub.positions_for(request.topics)
    if _named(request) - live.keys():
        await hub.partition_watch.refresh(unless_within=ON_DEMAND_MIN_INTERVAL)
        live = hub.positions_for(request.topics)
    return live


async def _requested(
    request: StreamRequest, hub: EventHub, live: dict[Position, int]
) -> tuple[dict[Position, int], list[Reset], LogPoint | None]:
    """The requested positions, the partitions gone, and the log point they came from if any."""
    if request.resume_point is not None:
        resolved = await _resolved(request.resume_point, hub, live)
        if resolved is None:
            return *_from_token(dict.fromkeys(live, 0), live), None
        point = request.resume_point if isinstance(request.resume_point, LogPoint) else None
        return *_from_token(resolved, live), point
    if request.resume_positions is not None:
        return *_from_token(request.resume_positions, live), None
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
    return positions, [], None


async def _past_end(
    positions: dict[Position, int], hub: EventHub, live: dict[Position, int], *, from_token: bool
) -> list[Reset]:
    """Positions past Kafka's end would silently skip every event until the log grew back
    to them. A token's restart at the log start, with a `Reset`; an explicit `offset=` (a
    client's own choice, not a log that moved under it) waits at the end."""
    ahead = {p: o for p, o in positions.items() if o > live[p]}
    if not ahead:
        return []
    ends = _as_positions(await hub.offsets.end_offsets(_tps(ahead)))
    past = {p: o for p, o in ahead.items() if o > ends[p]}
    if not past:
        return []
    if not from_token:
        positions.update({p: ends[p] for p in past})
        return []
    starts = _as_positions(await hub.offsets.beginning_offsets(_tps(past)))
    resets = []
    for position, offset in sorted(past.items()):
        positions[position] = starts[position]
        resets.append(Reset(*position, requested=offset, end=ends[position], restart=starts[position]))
    return resets


async def _retention_gaps(
    positions: dict[Position, int], hub: EventHub, live: dict[Position, int], restarted: set[Position]
) -> list[Gap]:
    behind = {p: o for p, o in positions.items() if o < live[p] and p not in restarted}
    if not behind:
        return []
    retained = _as_positions(await hub.offsets.beginning_offsets(_tps(behind)))
    gaps = []
    for position, offset in behind.items():
        if offset < retained[position]:
            gaps.append(Gap(*position, first=offset, last=retained[position] - 1))
            positions[position] = retained[position]
    return sorted(gaps, key=lambda gap: (gap.topic, gap.partition))


async def start_plan(request: StreamRequest, hub: EventHub) -> StartPlan:
    """Positions for a stream; raises StreamRequestError (400) or KafkaUnavailable."""
    live = await _live(request, hub)
    positions, gone, point = await _requested(request, hub, live)
    from_token = request.resume_positions is not None or request.resume_point is not None
    past_end = await _past_end(positions, hub, live, from_token=from_token)
    restarted = {(reset.topic, reset.partition) for reset in past_end}
    gaps = await _retention_gaps(positions, hub, live, restarted)
    resets = sorted([*past_end, *gone], key=lambda r: (r.topic, r.partition))
    # A point the log resolved, with no partition moved for retention or started over: the
    # catch-up can follow the log from it.
    return StartPlan(positions, gaps, resets, point if not resets and not gaps else None)
