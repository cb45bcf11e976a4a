"""What the hub passes on for some topics from a whole batch on, for a stream about to join it.

A stream catching up from Kafka chases a moving hub: each read from Kafka takes long enough
for the hub to pass on another batch. Instead, when the stream is one read away, it opens a
tap: from the end of the hub's current batch (`point`, where the hub's positions are
`positions`) the tap keeps every event the hub passes on for the stream's topics with the id
the hub gave it. The stream reads Kafka up to `point`, then takes what the tap holds (memory
only, no Kafka round trip) until the tap is empty at a moment when its positions are the
hub's, and joins the hub then, with no `await` in between: no gap, no duplicate, short ids.

A tap holds at most `limit` events; past that it drops them and says so (`overflowed`), and
the stream goes on catching up from Kafka.
"""

from __future__ import annotations

import asyncio

from crm_events.core.live_event import LiveEvent
from crm_events.core.position_log import LogPoint
from crm_events.core.positions import Position


class LiveTap:
    def __init__(self, topics: tuple[str, ...], *, limit: int) -> None:
        self.topics = topics
        self.limit = limit
        self.started = asyncio.Event()
        # The whole batch after which the tap started (None: the log did not account for the
        # hub's positions then), and the hub's positions in `topics` at that moment.
        self.point: LogPoint | None = None
        self.positions: dict[Position, int] = {}
        self.overflowed = False
        self._entries: list[tuple[LiveEvent, str]] = []

    def start(self, point: LogPoint | None, positions: dict[Position, int]) -> None:
        self.point = point if point is not None and point.segment is None else None
        self.positions = positions
        self.started.set()

    def add(self, event: LiveEvent, token: str) -> None:
        """An event the hub passed on, with the id of the hub's positions right after it."""
        if self.overflowed:
            return
        if len(self._entries) >= self.limit:
            self.overflowed = True
            self._entries.clear()
            return
        self._entries.append((event, token))

    def take(self) -> list[tuple[LiveEvent, str]]:
        entries, self._entries = self._entries, []
        return entries
