"""An event as the fan-out hands it out: its payload, its JSON encoded once, frames from it.

The JSON is strict (RFC 8259, UTF-8) and encoded once per event, whatever the number
of clients; each distinct resume id costs one frame built from those bytes.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from crm_events.core.frames import data_frame
from crm_events.core.positions import Position
from crm_events.core.records import KafkaRecord, WireDecoder, record_decode, undecodable_payload

logger = logging.getLogger(__name__)


class LiveEvent:
    """An event as the hub hands it out: payload, JSON text, and frames built once."""

    __slots__ = ("topic", "partition", "offset", "position", "payload", "data")

    def __init__(self, payload: dict[str, Any]) -> None:
        self.topic: str = payload["topic"]
        self.partition: int = payload["partition"]
        self.offset: int = payload["offset"]
        # Built once: every subscriber looks its position up by it.
        self.position: Position = (self.topic, self.partition)
        self.payload = payload
        # Strict JSON in UTF-8, encoded once: raises ValueError for what could not be
        # (NaN, lone surrogates), so a payload that cannot be sent is refused here.
        self.data = json.dumps(payload, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()

    @classmethod
    def of_record(cls, record: KafkaRecord, wire: WireDecoder | None = None) -> LiveEvent:
        """A record read from Kafka as an event: as it is, or marked if it cannot be sent.
        `wire` decodes values in the Confluent wire format (the schemas must be at hand)."""
        payload = record_decode(record, wire)
        try:
            return cls(payload)
        except (TypeError, ValueError) as error:  # record_decode's rules should make this unreachable
            logger.error("record %s:%s@%s cannot be encoded (%s); delivering it marked",
                         record.topic, record.partition, record.offset, error)
            return cls(undecodable_payload(topic=record.topic, partition=record.partition,
                                           offset=record.offset, error=f"cannot be encoded: {error}"))

    def frame(self, token: str) -> bytes:
        return data_frame(self.data, event_id=token)
