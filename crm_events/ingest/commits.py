"""Committing the consumer's offsets in batches, never past what the layer accepted.

A commit is a round trip to Kafka, as costly to the consumer as a whole small poll: after every
poll it was most of what a record cost under a steady flow. So published offsets are noted as
each poll is accepted and committed at most every `COMMIT_INTERVAL` seconds, and at once when
the flow pauses (a poll came back empty), when partitions are taken away (their new owner starts
from the commit) and when the consumer stops. What a crash leaves uncommitted was published:
it is read and published again, and web processes drop it as duplicates by offset.

A commit is bounded in time and skips partitions that no longer exist: a partition deleted (its
topic recreated, say) while its offsets waited would otherwise be retried by the client for as
long as it lives, and the consume loop with it. A commit that fails or takes too long is given
up, with a warning: the next poll's offsets supersede it, and a crash meanwhile replays more.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Protocol

from aiokafka import TopicPartition
from aiokafka.errors import CommitFailedError, KafkaError

logger = logging.getLogger(__name__)

# A crash replays at most this much of the flow; the web processes drop what they already have.
COMMIT_INTERVAL = 1.0
# Longer than a commit takes when Kafka answers; short enough that a stuck one holds the loop
# for less than a heartbeat's patience.
COMMIT_TIMEOUT = 5.0
COMMIT_FAILED_LOG = "commit of %s failed after a rebalance: %s"
COMMIT_GIVEN_UP_LOG = "commit of %s given up (%s); the next one supersedes it"


class CommittingConsumer(Protocol):
    """What `Commits` asks of aiokafka's consumer."""

    async def commit(self, offsets: dict[TopicPartition, int]) -> None: ...
    def partitions_for_topic(self, topic: str) -> set[int] | None: ...


class Commits:
    """Offsets published and not yet committed, for one consumer session."""

    def __init__(
        self, consumer: CommittingConsumer, *,
        interval: float = COMMIT_INTERVAL, timeout: float = COMMIT_TIMEOUT,
    ) -> None:
        self.consumer = consumer
        self.interval = interval
        self.timeout = timeout
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
        chosen = dict(self.pending) if partitions is None else {
            tp: self.pending[tp] for tp in partitions if tp in self.pending}
        if not chosen:
            return
        offsets = {tp: offset for tp, offset in chosen.items() if self._exists(tp)}
        for tp in chosen:
            del self.pending[tp]
        if partitions is None:
            self._last = time.monotonic()
        if offsets:
            await self._commit(offsets)

    def _exists(self, tp: TopicPartition) -> bool:
        """Whether the client's metadata still lists the partition (unknown metadata: assume so)."""
        known = self.consumer.partitions_for_topic(tp.topic)
        return known is None or tp.partition in known

    async def _commit(self, offsets: dict[TopicPartition, int]) -> None:
        try:
            async with asyncio.timeout(self.timeout):
                await self.consumer.commit(offsets)
        except CommitFailedError as error:
            # A rebalance took the partitions away; their new owner replays from the last
            # commit, and web processes drop what they already have.
            logger.warning(COMMIT_FAILED_LOG, offsets, error)
        except (KafkaError, TimeoutError) as error:
            logger.warning(COMMIT_GIVEN_UP_LOG, offsets, str(error) or type(error).__name__)
