"""Keeping a hub's partitions in step with Kafka's: partitions added, gone, or started over.

The hub learns its partitions once, at start. Every `KAFKA_METADATA_MAX_AGE` seconds
(and whenever a stream names a partition the hub does not know) a `PartitionWatch`
describes the served topics through the hub's `OffsetLookup` and tells the hub:

- a partition it has never seen: `partition_add` at the partition's log start. The hub
  cannot have passed anything on from it, so everything in it is news to every client;
- a partition that no longer exists (its topic deleted, or recreated with fewer
  partitions): `partition_remove`;
- a partition whose log now ends before the hub's position, which no log does while
  it lives (the hub's positions never pass the last stable offset): the topic was
  recreated, or the log truncated. `partition_reset` starts it over at its log start.

The consumer group notices added partitions by itself, within the same period (the
Kafka clients' `metadata_max_age_ms`), and rejoins so that they get an owner.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

from aiokafka import TopicPartition

from crm_events.config import KafkaConfig
from crm_events.core.positions import Position
from crm_events.exceptions import KafkaUnavailable
from crm_events.kafka.offsets import OffsetLookup

logger = logging.getLogger(__name__)


class WatchedHub(Protocol):
    """What the watch needs of the hub whose partitions it keeps in step."""

    config: KafkaConfig
    offsets: OffsetLookup
    positions: dict[Position, int]
    positions_ready: asyncio.Event

    def partition_add(self, position: Position, offset: int) -> int: ...
    def partition_remove(self, position: Position) -> None: ...
    def partition_reset(self, position: Position, offset: int) -> None: ...

# Requests naming partitions the hub does not know make it look at Kafka at most this often,
# however many there are (requests are anybody's).
ON_DEMAND_MIN_INTERVAL = 1.0


class PartitionWatch:
    def __init__(self, hub: WatchedHub, *, period: float) -> None:
        self.hub = hub
        self.period = period
        self._lock = asyncio.Lock()
        self._looked_at = -float("inf")

    async def run(self) -> None:
        """Look every `period` seconds, once the hub has its positions; never ends by itself."""
        await self.hub.positions_ready.wait()
        while True:
            await asyncio.sleep(self.period)
            try:
                await self.refresh()
            except KafkaUnavailable as error:
                logger.warning("cannot check the served topics' partitions (%s); next try in %.0fs",
                               error, self.period)
            except Exception:  # noqa: BLE001 - the watch must outlive any one look
                logger.exception("checking the served topics' partitions failed; next try in %.0fs",
                                 self.period)

    async def refresh(self, *, unless_within: float = 0.0) -> None:
        """One look at Kafka, unless one ended less than `unless_within` seconds ago; raises
        KafkaUnavailable. Looks never overlap: a caller waits for the one under way."""
        async with self._lock:
            loop = asyncio.get_running_loop()
            if loop.time() - self._looked_at < unless_within:
                return
            await self._look()
            self._looked_at = loop.time()

    async def _look(self) -> None:
        hub, offsets = self.hub, self.hub.offsets
        layout = await offsets.topic_partitions(hub.config.topics)
        existing = {(topic, partition) for topic, partitions in layout.items() for partition in partitions}
        known = {position for position in hub.positions if position[0] in layout}
        for position in sorted(known - existing):
            hub.partition_remove(position)
        # Positions read before asking: the log end can only be past them while the log lives.
        before = {position: hub.positions[position] for position in sorted(known & existing)}
        ends = await offsets.end_offsets([TopicPartition(*position) for position in before])
        restarted = [p for p, offset in before.items() if _offset_of(ends, p) < offset]
        added = sorted(existing - known)
        if not (restarted or added):
            return
        starts = await offsets.beginning_offsets([TopicPartition(*p) for p in [*restarted, *added]])
        for position in added:
            if position not in hub.positions:  # a record from the layer may have added it meanwhile
                hub.partition_add(position, _offset_of(starts, position))
        for position in restarted:
            hub.partition_reset(position, _offset_of(starts, position))


def _offset_of(offsets: dict[TopicPartition, int], position: Position) -> int:
    return offsets[TopicPartition(*position)]
