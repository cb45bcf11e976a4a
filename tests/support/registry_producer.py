"""A foreign producer's values: confluent-kafka's own serializers against a real registry.

The Protobuf message class is compiled from tests/support/protos/crm.proto by protoc (grpcio-tools)
into a scratch folder: `DealWon` is the file's second message (message indexes [1]), it nests a
message and an enum, and it holds a well-known type (Timestamp).
"""

from __future__ import annotations

import datetime
import decimal
import functools
import importlib.resources
import importlib.util
import tempfile
from pathlib import Path
from types import ModuleType
from typing import Any

from confluent_kafka import Producer
from confluent_kafka.schema_registry import SchemaRegistryClient, topic_subject_name_strategy
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.schema_registry.json_schema import JSONSerializer
from confluent_kafka.schema_registry.protobuf import ProtobufSerializer
from confluent_kafka.serialization import MessageField, SerializationContext
from grpc_tools import protoc

PROTOS = Path(__file__).parent / "protos"
# confluent-kafka's default strategy first asks the registry's associations API, a route Apicurio 3
# lacks and whose not-found answer it now and then never sends: the topic strategy (the subject
# `<topic>-value`, which the decoder's tests expect) is asked for by name, and a lost answer fails
# the call within the timeout instead of holding the test.
SUBJECTS = {"subject.name.strategy": topic_subject_name_strategy}
REGISTRY_TIMEOUT_SECONDS = 20

AVRO_V1 = (
    '{"type":"record","name":"Deal","namespace":"crm","fields":['
    '{"name":"id","type":"string"},'
    '{"name":"amount","type":{"type":"bytes","logicalType":"decimal","precision":10,"scale":2}},'
    '{"name":"at","type":{"type":"long","logicalType":"timestamp-millis"}},'
    '{"name":"stage","type":{"type":"enum","name":"Stage","symbols":["OPEN","WON"]}},'
    '{"name":"note","type":["null","string"],"default":null},'
    '{"name":"raw","type":"bytes"},{"name":"ratio","type":"double"}]}'
)
# Version 2 adds a field with a default (a compatible evolution).
AVRO_V2 = AVRO_V1[:-2] + ',{"name":"owner","type":"string","default":"nobody"}]}'
JSON_SCHEMA = '{"type":"object","properties":{"id":{"type":"string"},"n":{"type":"integer"}}}'
AT = datetime.datetime(2026, 12, 7, 5, 3, 0, 250000, tzinfo=datetime.UTC)


def avro_deal(version: int, number: int) -> dict[str, Any]:
    deal: dict[str, Any] = {"id": f"d{number}", "amount": decimal.Decimal("12.30"), "at": AT, "stage": "WON",
                            "note": None if number % 2 else "hi", "raw": b"\x00\xff", "ratio": float("nan")}
    if version == 2:
        deal["owner"] = "ana"
    return deal


def avro_deal_json(version: int, number: int) -> dict[str, Any]:
    """What a client sees of avro_deal (the mapping of crm_events/registry/avro_json.py)."""
    deal: dict[str, Any] = {"id": f"d{number}", "amount": "12.30", "at": "2026-12-07T05:03:00.250000Z",
                            "stage": "WON", "note": None if number % 2 else "hi", "raw": "AP8=",
                            "ratio": "NaN"}
    if version == 2:
        deal["owner"] = "ana"
    return deal


@functools.cache  # once per process: the default pool refuses the same file twice
def proto_module() -> ModuleType:
    out = Path(tempfile.mkdtemp(prefix="crm-pb-"))
    includes = importlib.resources.files("grpc_tools") / "_proto"
    assert protoc.main(["protoc", f"-I{PROTOS}", f"-I{includes}", f"--python_out={out}", "crm.proto"]) == 0
    spec = importlib.util.spec_from_file_location("crm_pb2", out / "crm_pb2.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


PROTO_DEAL_JSON = {
    "dealId": "d1", "amountCents": "1230", "wonAt": "2026-12-07T05:03:00.250Z", "stage": "WON",
    "blob": "AP8=", "lines": [{"sku": "x", "qty": 2}],
}


def confluent_produce(bootstrap: str, topic: str, values: list[bytes], *, partition: int = 0) -> None:
    """Produce with confluent-kafka's own client (librdkafka), in order, and wait for every ack."""
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True})
    for value in values:
        producer.produce(topic, value=value, partition=partition)
    assert producer.flush(30) == 0


class ForeignProducer:
    """Serializes values the way a Confluent client does (it registers the schemas)."""

    def __init__(self, url: str) -> None:
        self.registry = SchemaRegistryClient({"url": url, "timeout": REGISTRY_TIMEOUT_SECONDS})
        self.pb = proto_module()

    def avro(self, topic: str, version: int, number: int) -> bytes:
        schema = AVRO_V1 if version == 1 else AVRO_V2
        serialize = AvroSerializer(self.registry, schema, conf={"auto.register.schemas": True, **SUBJECTS})
        return bytes(serialize(avro_deal(version, number), SerializationContext(topic, MessageField.VALUE)))

    def protobuf(self, topic: str) -> bytes:
        message = self.pb.DealWon(deal_id="d1", amount_cents=1230, stage=self.pb.DealWon.WON,
                                  blob=b"\x00\xff", lines=[self.pb.DealWon.Line(sku="x", qty=2)])
        message.won_at.FromDatetime(AT.replace(tzinfo=None))
        serialize = ProtobufSerializer(self.pb.DealWon, self.registry,
                                       {"use.deprecated.format": False, **SUBJECTS})
        return bytes(serialize(message, SerializationContext(topic, MessageField.VALUE)))

    def json(self, topic: str, value: dict[str, Any]) -> bytes:
        serialize = JSONSerializer(JSON_SCHEMA, self.registry, conf=SUBJECTS)
        return bytes(serialize(value, SerializationContext(topic, MessageField.VALUE)))
