"""A foreign Kafka client (kafka-python, not the aiokafka the service uses) writing any bytes.

Header names in Kafka are meant to be UTF-8 strings, but librdkafka-based producers
write whatever bytes they are given; kafka-python's pure-Python record builder encodes
each name with `name.encode("utf-8")`, so a `RawHeaderName` puts raw bytes there.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from kafka import KafkaProducer


class RawHeaderName(str):
    """A header name whose bytes on the wire are `raw` (not UTF-8, say)."""

    raw: bytes

    def __new__(cls, raw: bytes) -> RawHeaderName:
        name = super().__new__(cls, raw.decode("latin-1"))
        name.raw = raw
        return name

    def encode(self, encoding: str = "utf-8", errors: str = "strict") -> bytes:
        return self.raw


@dataclass
class ForeignRecord:
    value: bytes | None
    key: bytes | None = None
    headers: list[tuple[str, bytes | None]] = field(default_factory=list)
    partition: int = 0


def foreign_produce(
    bootstrap: str, topic: str, batches: list[list[ForeignRecord]]
) -> list[tuple[int, int]]:
    """Produce in order with kafka-python, each inner list flushed on its own, so that records
    of different lists never share a record batch; return (partition, offset) of each. Blocking."""
    producer = KafkaProducer(
        bootstrap_servers=bootstrap, acks="all", linger_ms=50, max_in_flight_requests_per_connection=1
    )
    try:
        futures = []
        for batch in batches:
            futures += [
                producer.send(topic, value=r.value, key=r.key, headers=r.headers, partition=r.partition)
                for r in batch
            ]
            producer.flush(timeout=60)
        return [(m.partition, m.offset) for m in (future.get(timeout=60) for future in futures)]
    finally:
        producer.close(timeout=10)
