"""Numbering the consumer's batches: one record per layer message in the positions log.

The record is appended, and acknowledged by Kafka, before its message goes to the layer,
so any web process that passes a batch on can already resolve the ids it gives for it.
Its offset is the message's `batch` number. When the log cannot be written, the batch
goes out unnumbered: delivery never waits on the log, and web processes give full-length
ids until a numbered batch with a snapshot sets them straight again.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiokafka.errors import KafkaError

from crm_events.config import KafkaConfig
from crm_events.core.position_log import SNAPSHOT_EVERY, LogPoint, LogRecord, Segment
from crm_events.core.positions import Position
from crm_events.exceptions import KafkaUnavailable
from crm_events.kafka.position_log import PositionLogReader
from crm_events.kafka.position_registry import PositionLogAppender

logger = logging.getLogger(__name__)

# Where partitions end in Kafka, asked of the consumer's own client.
EndOffsets = Callable[[list[Position]], Awaitable[Mapping[Position, int]]]


def segments_of(items: list[dict[str, Any]]) -> list[Segment]:
    """The runs of one partition's records among `items` (in publishing order), and each
    item's `seg`: the index of its run. One `Segment` per run, built when the run ends."""
    segments: list[Segment] = []
    position: tuple[str, int] | None = None
    start = end = 0
    for item in items:
        event = item["event"]
        here = (event["topic"], event["partition"])
        if here != position:
            if position is not None:
                segments.append(Segment(*position, start=start, end=end))
            position, start = here, item["prev"]
        end = event["offset"] + 1
        item["seg"] = len(segments)
    if position is not None:
        segments.append(Segment(*position, start=start, end=end))
    return segments


class PositionLogWriter:
    """Appends this consumer's batches to the positions log; started on first use."""

    def __init__(self, config: KafkaConfig, *, consumer_id: str) -> None:
        self.config = config
        self.consumer_id = consumer_id
        self.appender = PositionLogAppender(config)
        self._reader = PositionLogReader(config)
        self._since_snapshot = SNAPSHOT_EVERY  # the first record carries one
        self._assigned = True  # the next snapshot follows new partitions: see `_published`

    def snapshot_due(self) -> None:
        """The consumer's partitions changed: the next record says where it stands in each."""
        self._since_snapshot = SNAPSHOT_EVERY
        self._assigned = True

    @property
    def snapshot_pending(self) -> bool:
        return self._since_snapshot >= SNAPSHOT_EVERY

    async def append(
        self, items: list[dict[str, Any]], positions: Callable[[], Mapping[Position, int]], *,
        ends: EndOffsets,
    ) -> tuple[int, dict[Position, int] | None] | None:
        """Write the record of a batch about to be published (marking each item's `seg`);
        `positions` says where the consumer stands before it (asked only for a snapshot), `ends`
        asks Kafka where its partitions end. Return its number and the snapshot it carries, or
        None if the log could not be written."""
        segments = tuple(segments_of(items))
        try:
            snapshot = await self._snapshot(positions(), ends) if self.snapshot_pending else None
            offset = await self.appender.append(LogRecord(self.consumer_id, segments, snapshot))
        except (KafkaUnavailable, KafkaError, OSError) as error:
            logger.warning("positions log %s not written (%s); publishing the batch unnumbered",
                           self.config.positions_topic, error)
            return None
        self._since_snapshot = 0 if snapshot is not None else self._since_snapshot + 1
        self._assigned = self._assigned and snapshot is None
        return offset, snapshot

    async def _snapshot(self, positions: Mapping[Position, int], ends: EndOffsets) -> dict[Position, int]:
        """Where this consumer stands. Right after an assignment that is its last commit, which
        may be behind what the partition's previous owner published before it stopped: the log
        knows how far that went, and the snapshot says no less (the records in between come
        again and every hub drops them), so the log keeps agreeing with the hubs. Never past the
        partition's end, though: a log that started over (a topic recreated) has not got there."""
        snapshot = dict(positions)
        if not (self._assigned and snapshot):
            return snapshot
        published = await self._published(list(snapshot))
        ahead = {p: offset for p, offset in published.items() if p in snapshot and offset > snapshot[p]}
        if ahead:
            limits = await ends(list(ahead))
            for position, offset in ahead.items():
                snapshot[position] = max(snapshot[position], min(offset, limits.get(position, 0)))
        return snapshot

    async def _published(self, partitions: list[Position]) -> dict[Position, int]:
        try:
            last = await self._reader.end() - 1
            state = await self._reader.state_at(LogPoint(last), partitions) if last >= 0 else None
        except KafkaUnavailable as error:
            logger.warning("positions log %s unreadable (%s); snapshot from the commits",
                           self.config.positions_topic, error)
            return {}
        return state or {}

    async def close(self) -> None:
        await self._reader.close()
        await self.appender.close()
