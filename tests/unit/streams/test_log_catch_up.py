"""Catching up along the positions log while the consumer keeps publishing.

Each window of the log is read from Kafka while the hub goes on receiving batches, so the
window ends behind the hub again. Following the log on from there never joined the hub under
a steady flow (the cluster test's streams were still catching up when Kafka went, and were
sent away with `resync`): the catch-up hands over to positions, which reads Kafka's end.
"""

import asyncio
from dataclasses import dataclass, field

from crm_events.core.position_log import LogPoint, LogRecord, Segment
from crm_events.core.positions import Position
from crm_events.streams.log_catch_up import LogChase, replay_along_log

TOPIC = "crm"
OTHER = "audit"  # the log's batches are of another topic: nothing to read from Kafka here
WINDOWS_MAX = 50


@dataclass
class FlowingLog:
    """The positions log of a consumer that publishes one more batch while each window is read."""

    cursor: "FlowingCursor"
    publishing: bool
    reads: int = 0

    async def records(self, first: int, last: int) -> list[tuple[int, LogRecord]]:
        self.reads += 1
        if self.publishing:
            self.cursor.batch += 1  # published while the window is read
        return [(n, LogRecord("consumer-a", (Segment(OTHER, 0, n, n + 1),))) for n in range(first, last + 1)]


@dataclass
class FlowingCursor:
    batch: int

    def point(self) -> LogPoint:
        return LogPoint(self.batch)


@dataclass
class FlowingHub:
    positions: dict[Position, int]
    publishing: bool = True
    cursor: FlowingCursor = field(default_factory=lambda: FlowingCursor(batch=20))
    subscribed: list[object] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.position_log = FlowingLog(self.cursor, self.publishing)

    def positions_for(self, topics: tuple[str, ...]) -> dict[Position, int]:
        return {p: offset for p, offset in self.positions.items() if p[0] in topics}

    def subscribe(self, subscriber: object) -> None:
        self.subscribed.append(subscriber)


@dataclass
class Stream:
    positions: dict[Position, int]
    topics: tuple[str, ...] = (TOPIC,)
    tokens: list[str] = field(default_factory=list)

    def token_known(self, token: str) -> None:
        self.tokens.append(token)


@dataclass(frozen=True)
class Config:
    positions_topic: str = "crm.positions"


async def along_log(hub: FlowingHub, stream: Stream, chase: LogChase) -> None:
    replay = replay_along_log(hub, stream, Config(), LogPoint(3),  # type: ignore[arg-type]
                              is_cancelled=lambda: hub.position_log.reads >= WINDOWS_MAX, chase=chase)
    async for _chunk in replay:
        pass


def test_a_stream_that_reached_the_hub_while_it_moved_on_goes_on_by_positions():
    hub, stream, chase = FlowingHub({(TOPIC, 0): 9}), Stream({(TOPIC, 0): 4}), LogChase()
    asyncio.run(along_log(hub, stream, chase))
    # One window, as far as the hub stood; then handed over, not chasing the hub window by window.
    assert (hub.position_log.reads, chase.behind_live, hub.subscribed) == (1, True, [])


def test_a_stream_where_the_hub_stands_after_its_window_joins_it():
    hub, stream, chase = FlowingHub({(TOPIC, 0): 9}, publishing=False), Stream({(TOPIC, 0): 9}), LogChase()
    asyncio.run(along_log(hub, stream, chase))
    assert (hub.position_log.reads, chase.behind_live, hub.subscribed) == (1, False, [stream])
