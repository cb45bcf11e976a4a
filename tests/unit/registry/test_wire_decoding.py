"""The wire-format decoder without a network: a registry that answers from a dict."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st

from crm_events.config import RegistryConfig
from crm_events.core.live_event import LiveEvent
from crm_events.core.records import REGISTRY_FORMATS, record_decode
from crm_events.core.wire_format import INDEXES_TRUNCATED, framed_parse, message_indexes_parse
from crm_events.registry.client import RegisteredSchema, RegistryUnreachable, SchemaUnknown
from crm_events.registry.decoder import RegistryDecoder, registry_decoder

AVRO = json.dumps({"type": "record", "name": "R", "fields": [
    {"name": "s", "type": "string"}, {"name": "xs", "type": {"type": "array", "items": "long"}},
    {"name": "u", "type": ["null", "bytes", "double"]},
    {"name": "m", "type": {"type": "map", "values": "float"}},
]})
PROTO = 'syntax = "proto3"; package t; message A { string s = 1; repeated int64 xs = 2; A child = 3; }'
SCHEMAS = {
    1: RegisteredSchema(AVRO, "AVRO"), 2: RegisteredSchema(PROTO, "PROTOBUF"),
    3: RegisteredSchema("{}", "JSON"),
}


class DictRegistry:
    def __init__(self, schemas: dict[int, RegisteredSchema], *, down: bool = False) -> None:
        self.schemas, self.down, self.asked = schemas, down, 0

    def schema_by_id(self, schema_id: int) -> RegisteredSchema:
        self.asked += 1
        if self.down:
            raise RegistryUnreachable("the registry cannot be reached: refused")
        if schema_id not in self.schemas:
            raise SchemaUnknown(f"the registry does not know schema id {schema_id}")
        return self.schemas[schema_id]

    def subject_of(self, schema_id: int) -> tuple[str | None, int | None]:
        return "s-value", 1


@dataclass
class Record:
    value: bytes | None
    key: bytes | None = None
    topic: str = "t"
    partition: int = 0
    offset: int = 0
    timestamp: int = 0
    headers: tuple[()] = ()


def decoder_of(registry: DictRegistry, retry: float = 0.2) -> RegistryDecoder:
    config = RegistryConfig(url="http://registry.invalid", retry_seconds=retry)
    return RegistryDecoder(config, client=registry)  # type: ignore[arg-type]


def test_only_magic_zero_with_a_whole_id_is_framed():
    assert framed_parse(b"\x00\x00\x00\x01") is None
    assert framed_parse(b"\x01\x00\x00\x00\x01x") is None
    assert framed_parse(b"\x00\x00\x00\x01\x00x").schema_id == 256


def test_message_indexes_zero_is_the_first_message_and_a_path_is_zigzag():
    assert message_indexes_parse(b"\x00rest") == ((0,), b"rest")
    assert message_indexes_parse(b"\x04\x02\x06rest") == ((1, 3), b"rest")


def test_truncated_indexes_are_refused_with_their_reason():
    try:
        message_indexes_parse(b"\x04\x02")
    except ValueError as error:
        assert str(error) == INDEXES_TRUNCATED
    else:
        raise AssertionError("accepted")


def test_an_unknown_id_is_marked_and_asked_for_once_while_remembered():
    registry = DictRegistry(SCHEMAS)
    decoder = decoder_of(registry)
    records = [Record(b"\x00\x00\x00\x00\x09ab"), Record(b"\x00\x00\x00\x00\x09cd")]
    asyncio.run(decoder.prepare(records))
    asyncio.run(decoder.prepare(records))
    payloads = [record_decode(r, decoder) for r in records]
    assert registry.asked == 1
    assert [p["value_format"] for p in payloads] == ["registry_undecoded"] * 2
    assert payloads[0]["value_error"] == "unknown: the registry does not know schema id 9"


def test_an_unreachable_registry_is_retried_for_the_bound_then_marked():
    registry = DictRegistry(SCHEMAS, down=True)
    decoder = decoder_of(registry, retry=0.6)
    record = Record(b'\x00\x00\x00\x00\x03{"a":1}')
    asyncio.run(decoder.prepare([record]))
    assert registry.asked >= 2
    assert record_decode(record, decoder)["value_error"] == (
        "unreachable: the registry cannot be reached: refused"
    )
    assert decoder.status()["delivering_marked"] is True
    registry.down = False
    decoder.cache.clear()
    asyncio.run(decoder.prepare([record]))
    assert record_decode(record, decoder)["value"] == {"a": 1}
    assert decoder.status()["reachable"] is True


def test_without_a_registry_such_values_stay_bytes():
    decoder = RegistryDecoder(RegistryConfig())
    assert record_decode(Record(b"\x00\x00\x00\x00\x01\xff"), decoder)["value_format"] == "base64"


def test_a_key_in_the_wire_format_is_decoded_too():
    decoder = decoder_of(DictRegistry(SCHEMAS))
    record = Record(b'\x00\x00\x00\x00\x03{"a":1}', key=b'\x00\x00\x00\x00\x03"k"')
    asyncio.run(decoder.prepare([record]))
    payload = record_decode(record, decoder)
    assert (payload["key"], payload["key_format"], payload["value"]) == ("k", "json_schema", {"a": 1})


_DECODER = decoder_of(DictRegistry(SCHEMAS))
asyncio.run(_DECODER.prepare([Record(b"\x00\x00\x00\x00" + bytes([i]) + b"x") for i in (1, 2, 3)]))


@settings(max_examples=400, deadline=None)
@given(schema_id=st.sampled_from([1, 2, 3, 4]), body=st.binary(max_size=64))
def test_any_bytes_after_magic_zero_are_decoded_or_marked_never_raised(schema_id, body):
    raw = b"\x00" + schema_id.to_bytes(4, "big") + body
    event = LiveEvent.of_record(Record(raw), _DECODER)
    payload = json.loads(event.data)
    assert payload["value_format"] in REGISTRY_FORMATS
    assert payload["value_schema"]["id"] == schema_id
    assert (payload["value_format"] == "registry_undecoded") == ("value_error" in payload)


def test_a_caller_with_less_time_waits_for_the_registry_less_long():
    registry = DictRegistry(SCHEMAS, down=True)
    decoder = decoder_of(registry, retry=60.0)
    record = Record(b'\x00\x00\x00\x00\x03{"a":1}')
    began = time.monotonic()
    asyncio.run(decoder.prepare([record], within=0.5))
    assert time.monotonic() - began < 5.0
    assert record_decode(record, decoder)["value_format"] == "registry_undecoded"


def test_a_process_has_one_decoder_so_each_schema_is_fetched_once_per_process():
    assert registry_decoder() is registry_decoder()
