"""Copies of undeliverable records in a dead-letter topic, as Kafka Connect keeps them.

With `KAFKA_DEAD_LETTER_TOPIC` set, `consume_events` copies every record it had to
deliver marked `undecodable` into that topic before committing past it: the
original key, value and headers when the client could read them, plus headers
saying where it came from and why (`aetherlink.errors.*`, named after Connect's
`__connect.errors.*`). Sending waits for Kafka's acknowledgement, so a copy is
never lost: a failure fails the poll, which is then read and published again.
"""

from __future__ import annotations

import logging

from aiokafka import AIOKafkaProducer

from crm_events import metrics
from crm_events.config import KafkaConfig
from crm_events.core.records import KafkaRecord, UnparseableRecord
from crm_events.kafka.clients import producer_create

logger = logging.getLogger(__name__)

HEADER_PREFIX = "aetherlink.errors."


def dead_letter_headers(record: KafkaRecord, reason: str) -> list[tuple[str, bytes]]:
    where = [
        ("topic", record.topic), ("partition", str(record.partition)), ("offset", str(record.offset)),
        ("reason", reason),
    ]
    ours = [(HEADER_PREFIX + name, value.encode("utf-8", "replace")) for name, value in where]
    theirs = [] if isinstance(record, UnparseableRecord) else [
        (name, value or b"") for name, value in record.headers or ()
    ]
    return ours + theirs


class DeadLetters:
    """A producer into the dead-letter topic, started on first use; a no-op without one."""

    def __init__(self, config: KafkaConfig) -> None:
        self.config = config
        self.topic = config.dead_letter_topic
        self._producer: AIOKafkaProducer | None = None

    async def send(self, record: KafkaRecord, reason: str) -> None:
        if not self.topic:
            return
        if self._producer is None:
            producer = producer_create(self.config)
            await producer.start()
            self._producer = producer
        # Kafka wants a key or a value: an unparseable record's copy has an empty value.
        value = b"" if record.key is None and record.value is None else record.value
        await self._producer.send_and_wait(
            self.topic, value, key=record.key, headers=dead_letter_headers(record, reason)
        )
        metrics.RECORDS_DEAD_LETTERED.labels(topic=record.topic).inc()
        logger.info(
            "record %s:%s@%s copied to dead-letter topic %s", record.topic, record.partition,
            record.offset, self.topic,
        )

    async def close(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            await producer.stop()
