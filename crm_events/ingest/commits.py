"""Committing the consumer's offsets in batches, never past what the layer accepted.

A commit is a round trip to Kafka, as costly to the consumer as a whole small poll: after every
poll it was most of what a record cost under a steady flow. So published offsets are noted as
each poll is accepted and committed at most every `COMMIT_INTERVAL` seconds, and at once when
the flow pauses (a poll came back empty), when partitions are taken away (their new owner starts
from the commit) and when the consumer stops. What a crash leaves uncommitted was published:
it is read and published again, and web processes drop it as duplicates by offset.
"""

from __future__ import annotations

import logging
import time

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import CommitFailedError

logger = logging.getLogger(__name__)

# A crash replays at most this much of the flow; the web processes drop what they already have.
COMMIT_INTERVAL = 1.0
COMMIT_FAILED_LOG = "commit of %s failed after a rebalance: %s"


class Commits:
    """Offsets published and not yet committed, for one consumer session."""

    def __init__(self, consumer: AIOKafkaConsumer, *, interval: float = COMMIT_INTERVAL) -> None:
        self.consumer = consumer
        self.interval = interval
        self.pending: dict[TopicPartition, int] = {}
        self._last = time.monotonic()

    def published(self, offsets: dict[TopicPartition, int]) -> None:
        """The layer accepted everything before these offsets."""
        self.pending.update(offsets)

    async def due(self) -> None:
        """Commit if the interval has passed since the last commit."""
        if self.pending and time.monotonic() - self._last >= self.interval:
            await self.flush()

    async def flush(self, partitions: list[TopicPartition] | None = None) -> None:
        """Commit what is pending now (of `partitions` only, when given)."""
        chosen = self.pending if partitions is None else {
            tp: self.pending[tp] for tp in partitions if tp in self.pending}
        if not chosen:
            return
        offsets = dict(chosen)
        for tp in offsets:
            del self.pending[tp]
        if partitions is None:
            self._last = time.monotonic()
        try:
            await self.consumer.commit(offsets)
        except CommitFailedError as error:
            # A rebalance took the partitions away; their new owner replays from the last
            # commit, and web processes drop what they already have.
            logger.warning(COMMIT_FAILED_LOG, offsets, error)
