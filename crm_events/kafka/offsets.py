"""Offset look-ups for a web process: partitions, log start and end, offsets for a time.

One `OffsetLookup` per web process shares a group-less consumer and an admin
client, started on first use and restarted after a failure. Every call has a
deadline and fails as `KafkaUnavailable`, so a request never hangs on Kafka.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import TypeVar

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError, UnknownTopicOrPartitionError

from crm_events.config import KafkaConfig
from crm_events.exceptions import KafkaRefused, KafkaUnavailable
from crm_events.kafka.clients import admin_create, reader_create
from crm_events.kafka.diagnosis import failure_explain

logger = logging.getLogger(__name__)

LOOKUP_TIMEOUT = 10.0
T = TypeVar("T")


class OffsetLookup:
    def __init__(self, config: KafkaConfig) -> None:
        self.config = config
        self._consumer: AIOKafkaConsumer | None = None
        self._admin: AIOKafkaAdminClient | None = None
        self._lock = asyncio.Lock()

    async def _clients(self) -> tuple[AIOKafkaConsumer, AIOKafkaAdminClient]:
        async with self._lock:
            if self._consumer is None or self._admin is None:
                consumer, admin = reader_create(self.config), admin_create(self.config)
                try:
                    await consumer.start()
                    await admin.start()
                except BaseException:
                    await _close_quietly(consumer, admin)
                    raise
                self._consumer, self._admin = consumer, admin
            return self._consumer, self._admin

    async def _call(self, what: str, call: Callable[..., Awaitable[T]]) -> T:
        try:
            async with asyncio.timeout(LOOKUP_TIMEOUT):
                return await call(*await self._clients())
        except (KafkaError, OSError, TimeoutError) as error:
            await self.close()
            refused = await failure_explain(self.config, error)
            if refused is not None:
                raise KafkaRefused(refused) from error
            raise KafkaUnavailable(f"Kafka did not answer ({what}): {error or 'timeout'}") from error

    async def partitions(self, topics: Iterable[str]) -> list[TopicPartition]:
        async def describe(_consumer: AIOKafkaConsumer, admin: AIOKafkaAdminClient) -> list:
            return await admin.describe_topics(list(topics))

        described = await self._call("describe topics", describe)
        return sorted(
            TopicPartition(topic["topic"], partition["partition"])
            for topic in described
            if not topic["error_code"]
            for partition in topic["partitions"]
        )

    async def topic_partitions(self, topics: Iterable[str]) -> dict[str, set[int]]:
        """The partitions of each topic Kafka could describe: an empty set for a topic that
        does not exist; a topic it failed to describe otherwise (no leader yet, say) is left out."""
        async def describe(_consumer: AIOKafkaConsumer, admin: AIOKafkaAdminClient) -> list:
            return await admin.describe_topics(list(topics))

        layout: dict[str, set[int]] = {}
        for topic in await self._call("describe topics", describe):
            if topic["error_code"] == UnknownTopicOrPartitionError.errno:
                layout[topic["topic"]] = set()
            elif not topic["error_code"]:
                layout[topic["topic"]] = {partition["partition"] for partition in topic["partitions"]}
        return layout

    async def end_offsets(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        return await self._call("end offsets", lambda consumer, _admin: consumer.end_offsets(tps))

    async def beginning_offsets(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        return await self._call(
            "beginning offsets", lambda consumer, _admin: consumer.beginning_offsets(tps)
        )

    async def offsets_for_time(self, tps: list[TopicPartition], ms: int) -> dict[TopicPartition, int]:
        """The first offset at or after `ms` per partition; the end offset where none is."""
        found = await self._call(
            "offsets for time", lambda consumer, _admin: consumer.offsets_for_times(dict.fromkeys(tps, ms))
        )
        missing = [tp for tp, hit in found.items() if hit is None]
        ends = await self.end_offsets(missing) if missing else {}
        return {tp: hit.offset if hit is not None else ends[tp] for tp, hit in found.items()}

    async def cluster_id(self) -> str:
        """The Kafka cluster's id ("" if the broker does not say)."""
        async def describe(_consumer: AIOKafkaConsumer, admin: AIOKafkaAdminClient) -> dict:
            return await admin.describe_cluster()

        return str((await self._call("describe cluster", describe)).get("cluster_id") or "")

    async def close(self) -> None:
        consumer, admin, self._consumer, self._admin = self._consumer, self._admin, None, None
        await _close_quietly(consumer, admin)


async def _close_quietly(consumer: AIOKafkaConsumer | None, admin: AIOKafkaAdminClient | None) -> None:
    for close in (consumer and consumer.stop, admin and admin.close):
        if close is None:
            continue
        try:
            await close()
        except (KafkaError, OSError) as error:
            logger.debug("closing a Kafka client failed: %s", error)
