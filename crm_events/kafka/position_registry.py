"""Writing to the positions log: the one producer behind every record of it.

`consume_events` appends its batches (`ingest/position_log.py`); a web process writes down
positions that no log point names, to name them by the record's offset in a version 3 id: a
stream that starts from `earliest`, a time or offsets stands where no log point does, and so
do the start and target of a catch-up round (`streams/ordered_catch_up.py`). The same
positions are written once per process (kept, bounded), so a thousand clients that start from
`earliest` together cost one record.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Mapping

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from crm_events.config import KafkaConfig
from crm_events.core.position_log import LogRecord, Registered, log_record_encode
from crm_events.core.positions import Position
from crm_events.exceptions import KafkaUnavailable
from crm_events.kafka.clients import producer_create

logger = logging.getLogger(__name__)

WRITE_TIMEOUT = 3.0  # a record takes milliseconds; a stream waits on it
KNOWN_MAX = 4096
# After a failed write, registering fails at once for this long: streams then catch up with
# full-length ids without waiting (a positions topic not created yet, say, while the consumer
# is still of the previous release), and Kafka is not asked again for every stream.
REFUSED_PAUSE = 30.0
REGISTRY_PAUSED = "positions log not written lately ({reason}); not trying again for a while"


class PositionLogAppender:
    """Appends records to the positions log, each acknowledged before `append` returns."""

    def __init__(self, config: KafkaConfig) -> None:
        self.config = config
        self._producer: AIOKafkaProducer | None = None
        self._stopping: set[asyncio.Task[None]] = set()

    async def append(self, record: LogRecord) -> int:
        """The record's offset; raises KafkaUnavailable if Kafka did not take it in time."""
        try:
            async with asyncio.timeout(WRITE_TIMEOUT):
                if self._producer is None:
                    producer = producer_create(self.config, linger_ms=0)  # a batch waits on it
                    await producer.start()
                    self._producer = producer
                value = log_record_encode(record)
                sent = await self._producer.send_and_wait(self.config.positions_topic, value, partition=0)
        except (KafkaError, OSError, TimeoutError) as error:
            self._discard()
            raise KafkaUnavailable(f"positions log not written: {error or 'timeout'}") from error
        return int(sent.offset)

    def _discard(self) -> None:
        """Let go of a producer that failed, stopping it in the background: its stop() waits for
        the record it could not send to expire, and the stream waiting on this write (for its
        heartbeat's id, say) must not wait that long."""
        producer, self._producer = self._producer, None
        if producer is not None:
            task = asyncio.create_task(_stop_quietly(producer))
            self._stopping.add(task)
            task.add_done_callback(self._stopping.discard)

    async def close(self) -> None:
        self._discard()
        if self._stopping:
            await asyncio.gather(*self._stopping)


async def _stop_quietly(producer: AIOKafkaProducer) -> None:
    try:
        await producer.stop()
    except (KafkaError, OSError) as error:
        logger.debug("closing the positions log producer failed: %s", error)


class PositionRegistry:
    """One per web process: writes positions down, once each."""

    def __init__(self, config: KafkaConfig) -> None:
        self.appender = PositionLogAppender(config)
        self._known: OrderedDict[frozenset[tuple[Position, int]], Registered] = OrderedDict()
        self._paused_until = 0.0
        self._paused_reason = ""

    async def register(self, positions: Mapping[Position, int]) -> Registered:
        """The record naming `positions`; raises KafkaUnavailable if it cannot be written."""
        key = frozenset(positions.items())
        known = self._known.get(key)
        if known is not None:
            self._known.move_to_end(key)
            return known
        if time.monotonic() < self._paused_until:
            raise KafkaUnavailable(REGISTRY_PAUSED.format(reason=self._paused_reason))
        try:
            offset = await self.appender.append(LogRecord(consumer="", registered=dict(positions)))
        except KafkaUnavailable as error:
            self._paused_until, self._paused_reason = time.monotonic() + REFUSED_PAUSE, str(error)
            raise
        registered = self._known[key] = Registered(offset)
        while len(self._known) > KNOWN_MAX:
            self._known.popitem(last=False)
        return registered

    async def close(self) -> None:
        await self.appender.close()
