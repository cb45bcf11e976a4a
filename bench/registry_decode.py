"""Decode throughput of Avro values in the Confluent wire format, schemas cached (one core).

`python -m bench.registry_decode [--records N]`: encodes N CRM-like Avro records with fastavro,
frames them (magic 0, schema id), and times `record_decode` with a prepared RegistryDecoder,
the consumer's per-record work, in this one process.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import time
from dataclasses import dataclass

import fastavro

from crm_events.config import RegistryConfig
from crm_events.core.records import record_decode
from crm_events.registry.client import RegisteredSchema
from crm_events.registry.decoder import RegistryDecoder

SCHEMA = {"type": "record", "name": "DealWon", "namespace": "crm", "fields": [
    {"name": "type", "type": "string"}, {"name": "deal_id", "type": "string"},
    {"name": "amount", "type": {"type": "bytes", "logicalType": "decimal", "precision": 12, "scale": 2}},
    {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
    {"name": "owner", "type": ["null", "string"]},
    {"name": "tags", "type": {"type": "array", "items": "string"}},
]}


class OneSchema:
    def schema_by_id(self, schema_id: int) -> RegisteredSchema:
        return RegisteredSchema(json.dumps(SCHEMA), "AVRO")

    def subject_of(self, schema_id: int) -> tuple[str | None, int | None]:
        return "deals-value", 1


@dataclass
class Record:
    value: bytes
    key: bytes | None = None
    topic: str = "deals"
    partition: int = 0
    offset: int = 0
    timestamp: int = 0
    headers: tuple[()] = ()


def records(count: int) -> list[Record]:
    import datetime
    import decimal
    parsed = fastavro.parse_schema(SCHEMA)
    out = []
    for number in range(count):
        buffer = io.BytesIO()
        fastavro.schemaless_writer(buffer, parsed, {
            "type": "deal.won", "deal_id": f"d{number}", "amount": decimal.Decimal("1234.50"),
            "at": datetime.datetime(2026, 12, 7, tzinfo=datetime.UTC), "owner": "ana", "tags": ["a", "b"],
        })
        out.append(Record(b"\x00\x00\x00\x00\x01" + buffer.getvalue(), offset=number))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=100_000)
    count = parser.parse_args().records
    batch = records(count)
    decoder = RegistryDecoder(RegistryConfig(url="http://bench.invalid"), client=OneSchema())  # type: ignore[arg-type]
    asyncio.run(decoder.prepare(batch[:1]))
    began = time.process_time()
    for record in batch:
        record_decode(record, decoder)
    spent = time.process_time() - began
    print(f"{count} Avro records decoded in {spent:.2f}s CPU: {count / spent:,.0f} records/s per core")


if __name__ == "__main__":
    main()
