"""Reading history straight from Kafka: the durable log behind resumes and repairs.

A `ReplayReader` is a short-lived, group-less consumer that assigns the partitions
it needs and seeks to exact offsets; it never joins or disturbs the consumer group.
"""

from __future__ import annotations

import asyncio
from types import TracebackType

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from crm_events.config import KafkaConfig
from crm_events.exceptions import KafkaUnavailable
from crm_events.kafka.clients import reader_create
from crm_events.kafka.fetch import Fetched, records_fetch
from crm_events.registry import RegistryDecoder, registry_decoder

FETCH_TIMEOUT_MS = 500
FETCH_MAX_RECORDS = 500
START_TIMEOUT = 10.0
# The hub's repair has REPAIR_TIMEOUT in all (fanout/repair.py): it waits for the registry less long.
REPAIR_REGISTRY_SECONDS = 10.0

# Each reader holds broker connections and fetch buffers: bound how many run at once.
readers_running = asyncio.Semaphore(16)


class ReplayReader:
    """`async with ReplayReader(config, {tp: offset}) as reader:` then `await reader.fetch()`."""

    def __init__(
        self, config: KafkaConfig, starts: dict[TopicPartition, int], *, limited: bool = True
    ) -> None:
        """`limited=False` is for the hub's repair, which all live streams wait on: it must
        not queue behind clients' replays for one of the shared slots."""
        self.starts = starts
        self._slots = readers_running if limited else None
        self._consumer: AIOKafkaConsumer = reader_create(config)
        # What decodes values in the Confluent wire format: `fetch` has their schemas at hand.
        self.wire: RegistryDecoder = registry_decoder()

    async def __aenter__(self) -> ReplayReader:
        if self._slots is not None:
            await self._slots.acquire()
        try:
            async with asyncio.timeout(START_TIMEOUT):
                await self._consumer.start()
        except (KafkaError, OSError, TimeoutError) as error:
            await self.__aexit__(None, None, None)
            raise KafkaUnavailable(f"Kafka did not answer (replay): {error or 'timeout'}") from error
        except BaseException:
            # Cancelled while starting (the client left): `async with` runs no __aexit__
            # for a failed __aenter__, so give the slot back and close the consumer here,
            # or 16 such departures leave every later replay and repair waiting forever.
            await self.__aexit__(None, None, None)
            raise
        self._consumer.assign(list(self.starts))
        for tp, offset in self.starts.items():
            self._consumer.seek(tp, offset)
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            await self._consumer.stop()
        finally:
            if self._slots is not None:
                self._slots.release()

    async def fetch(self, tps: list[TopicPartition]) -> Fetched:
        """The next records of some of `tps`, in offset order per partition (maybe none);
        a record the client cannot parse comes as an `UnparseableRecord` (see kafka_fetch)."""
        try:
            starts = {tp: await self._consumer.position(tp) for tp in tps}
            fetched = await records_fetch(
                self._consumer, tps, next_offsets=starts,
                timeout_ms=FETCH_TIMEOUT_MS, max_records=FETCH_MAX_RECORDS,
            )
        except (KafkaError, OSError) as error:
            raise KafkaUnavailable(f"Kafka failed during replay: {error}") from error
        await self.wire.prepare(
            (record for records in fetched.values() for record in records),
            within=None if self._slots is not None else REPAIR_REGISTRY_SECONDS,
        )
        return fetched

    async def end_offsets(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        try:
            return dict(await self._consumer.end_offsets(tps))
        except (KafkaError, OSError) as error:
            raise KafkaUnavailable(f"Kafka failed during replay: {error}") from error

    async def next_offset(self, tp: TopicPartition) -> int:
        """Where the next fetch of `tp` starts: past records, control markers and compacted holes."""
        return await self._consumer.position(tp)
