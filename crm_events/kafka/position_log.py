"""Reading the positions log: what a version 2 resume id's log point means in offsets.

A web process resolves a point by reading the log backwards from it until a snapshot
covers every partition it asks about, then applying the records forward (see
`crm_events.core.position_log`). Records read are kept, bounded, so the many clients that
resume from the same few points after a restart cost one read between them.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Iterable

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from crm_events.config import KafkaConfig
from crm_events.core.position_log import (
    Amended,
    Between,
    LogPoint,
    LogRecord,
    LogRecordError,
    Ref,
    amended_state,
    between_state,
    log_record_decode,
    log_state_at,
)
from crm_events.core.positions import Position
from crm_events.exceptions import KafkaUnavailable
from crm_events.kafka.clients import reader_create

logger = logging.getLogger(__name__)

READ_TIMEOUT = 10.0
FIRST_WINDOW = 128
# Further back than this no point is resolved: its snapshot is missing or the log is not ours.
MAX_WINDOW = 8192
CACHED_RECORDS = 4096
# Points resolved: after a restart many clients resume from the same few.
CACHED_STATES = 32


class PositionLogReader:
    """One per web process: reads records of the positions log by offset, and resolves points."""

    def __init__(self, config: KafkaConfig) -> None:
        self.config = config
        self.tp = TopicPartition(config.positions_topic, 0)
        self._consumer: AIOKafkaConsumer | None = None
        self._lock = asyncio.Lock()  # one read at a time through the one consumer
        self._cache: OrderedDict[int, LogRecord | None] = OrderedDict()
        self._states: OrderedDict[tuple[LogPoint, frozenset[Position]], dict[Position, int]] = OrderedDict()

    async def state_at(self, point: LogPoint, wanted: Iterable[Position]) -> dict[Position, int] | None:
        """The positions at `point` of the partitions of `wanted`'s topics that the log covers
        there: all of `wanted`, unless some did not exist yet (or the log holds no snapshot of
        them within MAX_WINDOW records). None if the log no longer holds the point.
        Raises KafkaUnavailable."""
        wanted = set(wanted)
        key = (point, frozenset(wanted))
        if key in self._states:
            self._states.move_to_end(key)
            return dict(self._states[key])
        state = await self._state_read(point, wanted)
        if state is not None:
            self._states[key] = dict(state)
            while len(self._states) > CACHED_STATES:
                self._states.popitem(last=False)
        return state

    async def _state_read(self, point: LogPoint, wanted: set[Position]) -> dict[Position, int] | None:
        topics = {topic for topic, _ in wanted}
        if point.batch not in self._cache and point.batch >= await self.end():
            return None  # not written (yet): no id we issued names it
        window = FIRST_WINDOW
        while True:
            first = max(0, point.batch - window + 1)
            records = await self.records(first, point.batch)
            state = log_state_at(records, point, topics)
            if state is None or wanted <= state.keys() or window >= MAX_WINDOW or self._log_began(first):
                return state
            window *= 4

    def _log_began(self, first: int) -> bool:
        """Whether nothing before `first` can be read (the log's start, or gone with retention)."""
        return first == 0 or self._cache.get(first) is None

    async def ref_state(self, ref: Ref, wanted: Iterable[Position]) -> dict[Position, int] | None:
        """The positions of `wanted` that a log point or a registered record stands for."""
        if isinstance(ref, LogPoint):
            return await self.state_at(ref, wanted)
        if ref.record not in self._cache and ref.record >= await self.end():
            return None
        found = await self.records(ref.record, ref.record)
        registered = found[0][1].registered if found else None
        if registered is None:
            return None
        topics = {topic for topic, _ in wanted}
        return {position: offset for position, offset in registered.items() if position[0] in topics}

    async def point_state(
        self, point: LogPoint | Between | Amended, wanted: Iterable[Position]
    ) -> dict[Position, int] | None:
        """The positions of `wanted` that a resume id's point stands for, whichever kind it is;
        None if the log no longer holds what it names."""
        if isinstance(point, Between):
            return await self.between_state(point, wanted)
        if isinstance(point, Amended):
            base = await self.state_at(point.point, wanted)
            return amended_state(base, point) if base is not None else None
        return await self.state_at(point, wanted)

    async def between_state(self, at: Between, wanted: Iterable[Position]) -> dict[Position, int] | None:
        """The positions of `wanted` where a stream caught up partition by partition stood."""
        wanted = set(wanted)
        start = await self.ref_state(at.start, wanted)
        target = await self.ref_state(at.target, wanted)
        if start is None or target is None:
            return None
        return between_state(start, target, at)

    async def records(self, first: int, last: int) -> list[tuple[int, LogRecord]]:
        """The readable records at offsets first..last (those the log still holds)."""
        missing = [offset for offset in range(first, last + 1) if offset not in self._cache]
        if missing:
            await self._read(missing[0], missing[-1])
        found = []
        for offset in range(first, last + 1):
            record = self._cache.get(offset)
            if record is not None:
                self._cache.move_to_end(offset)
                found.append((offset, record))
        return found

    async def _read(self, first: int, last: int) -> None:
        try:
            async with asyncio.timeout(READ_TIMEOUT), self._lock:
                consumer = await self._started()
                start = (await consumer.beginning_offsets([self.tp]))[self.tp]
                for offset in range(first, min(start, last + 1)):
                    self._remember(offset, None)  # gone with retention
                if start <= last:
                    await self._fetch(consumer, max(first, start), last)
        except (KafkaError, OSError, TimeoutError) as error:
            await self.close()
            raise KafkaUnavailable(f"Kafka did not answer (positions log): {error or 'timeout'}") from error

    async def _fetch(self, consumer: AIOKafkaConsumer, first: int, last: int) -> None:
        consumer.seek(self.tp, first)
        while await consumer.position(self.tp) <= last:
            fetched = await consumer.getmany(self.tp, timeout_ms=1000)
            for message in fetched.get(self.tp, []):
                if message.offset <= last:
                    self._remember(message.offset, self._decoded(message.value, message.offset))
            if not fetched and await self._at_end(consumer):
                return  # asked past the end

    async def _at_end(self, consumer: AIOKafkaConsumer) -> bool:
        return bool(await consumer.position(self.tp) >= (await consumer.end_offsets([self.tp]))[self.tp])

    def _decoded(self, value: bytes | None, offset: int) -> LogRecord | None:
        try:
            return log_record_decode(value, offset=offset)
        except LogRecordError as error:
            logger.warning("%s; skipping it", error)
            return None

    def _remember(self, offset: int, record: LogRecord | None) -> None:
        self._cache[offset] = record
        while len(self._cache) > CACHED_RECORDS:
            self._cache.popitem(last=False)

    async def end(self) -> int:
        """The offset the next record of the log will get."""
        try:
            async with asyncio.timeout(READ_TIMEOUT), self._lock:
                consumer = await self._started()
                return int((await consumer.end_offsets([self.tp]))[self.tp])
        except (KafkaError, OSError, TimeoutError) as error:
            await self.close()
            raise KafkaUnavailable(f"Kafka did not answer (positions log): {error or 'timeout'}") from error

    async def _started(self) -> AIOKafkaConsumer:
        if self._consumer is None:
            consumer = reader_create(self.config)
            try:
                await consumer.start()
            except BaseException:
                await consumer.stop()
                raise
            consumer.assign([self.tp])
            self._consumer = consumer
        return self._consumer

    async def close(self) -> None:
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            try:
                await consumer.stop()
            except (KafkaError, OSError) as error:
                logger.debug("closing the positions log reader failed: %s", error)
