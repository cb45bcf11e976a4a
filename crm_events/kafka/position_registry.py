"""Positions a web process writes down in the positions log, to name them by a record's offset.

A stream that starts from `earliest`, a time or offsets stands where no log point does; so
do the start and target of a catch-up round (`streams/ordered_catch_up.py`). The web process
writes such positions as a record of the log and names them by its offset in a version 3 id.
The same positions are written once per process (kept, bounded), so a thousand clients that
start from `earliest` together cost one record.
"""

from __future__ import annotations

import asyncio
import logging
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

WRITE_TIMEOUT = 10.0
KNOWN_MAX = 4096


class PositionRegistry:
    """One per web process: writes positions down, once each."""

    def __init__(self, config: KafkaConfig) -> None:
        self.config = config
        self._producer: AIOKafkaProducer | None = None
        self._known: OrderedDict[frozenset[tuple[Position, int]], Registered] = OrderedDict()

    async def register(self, positions: Mapping[Position, int]) -> Registered:
        """The record naming `positions`; raises KafkaUnavailable if it cannot be written."""
        key = frozenset(positions.items())
        known = self._known.get(key)
        if known is not None:
            self._known.move_to_end(key)
            return known
        record = LogRecord(consumer="", registered=dict(positions))
        try:
            async with asyncio.timeout(WRITE_TIMEOUT):
                producer = await self._started()
                value = log_record_encode(record)
                sent = await producer.send_and_wait(self.config.positions_topic, value, partition=0)
        except (KafkaError, OSError, TimeoutError) as error:
            await self.close()
            raise KafkaUnavailable(f"Kafka did not answer (positions log): {error or 'timeout'}") from error
        registered = self._known[key] = Registered(int(sent.offset))
        while len(self._known) > KNOWN_MAX:
            self._known.popitem(last=False)
        return registered

    async def _started(self) -> AIOKafkaProducer:
        if self._producer is None:
            producer = producer_create(self.config, linger_ms=0)
            await producer.start()
            self._producer = producer
        return self._producer

    async def close(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            try:
                await producer.stop()
            except (KafkaError, OSError) as error:
                logger.debug("closing the positions registry's producer failed: %s", error)
