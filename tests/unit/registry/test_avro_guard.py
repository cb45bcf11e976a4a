"""Avro schemas with arrays of items that take no bytes are refused before any record is read:
a few bytes could otherwise announce more items than the reader would ever finish building."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import fastavro
import pytest

from crm_events.core.records import record_decode
from crm_events.registry.avro_guard import ZERO_WIDTH_ITEMS, zero_width_array
from crm_events.registry.client import RegisteredSchema
from tests.unit.registry.test_wire_decoding import DictRegistry, Record, decoder_of

EMPTY = {"type": "record", "name": "Empty", "fields": []}
NULLS = {"type": "record", "name": "Nulls",
         "fields": [{"name": "a", "type": "null"}, {"name": "b", "type": EMPTY}]}


def record_of(field_type: Any) -> dict[str, Any]:
    return {"type": "record", "name": "R", "fields": [{"name": "f", "type": field_type}]}


def found(schema: dict[str, Any], *referenced: dict[str, Any]) -> str | None:
    named: dict[str, Any] = {}
    for other in referenced:
        fastavro.parse_schema(other, named_schemas=named)
    return zero_width_array(fastavro.parse_schema(schema, named_schemas=named), named)


@pytest.mark.parametrize(("field_type", "items"), [
    ({"type": "array", "items": "null"}, "null"),
    ({"type": "array", "items": EMPTY}, "Empty"),
    ({"type": "array", "items": NULLS}, "Nulls"),
    ({"type": "array", "items": {"type": "fixed", "name": "F0", "size": 0}}, "F0"),
    (["null", {"type": "map", "values": {"type": "array", "items": "null"}}], "null"),
    ({"type": "array", "items": {"type": "array", "items": "null"}}, "null"),  # the inner one
])
def test_arrays_of_values_that_take_no_bytes_are_found(field_type, items):
    assert found(record_of(field_type)) == items


def test_a_named_type_defined_in_a_referenced_schema_is_followed():
    assert found(record_of({"type": "array", "items": "Empty"}), EMPTY) == "Empty"


@pytest.mark.parametrize("field_type", [
    {"type": "array", "items": "long"},
    {"type": "array", "items": ["null", "long"]},  # a union writes its branch's index
    {"type": "map", "values": "null"},  # every entry carries its key
    {"type": "array", "items": {"type": "enum", "name": "One", "symbols": ["x"]}},
    {"type": "array", "items": {"type": "fixed", "name": "F1", "size": 1}},
    {"type": "array", "items": {"type": "array", "items": "long"}},
])
def test_items_of_at_least_one_byte_are_decoded(field_type):
    assert found(record_of(field_type)) is None


def test_a_recursive_record_is_walked_once():
    linked = {"type": "record", "name": "Node", "fields": [
        {"name": "next", "type": ["null", "Node"]},
        {"name": "xs", "type": {"type": "array", "items": "string"}},
    ]}
    assert found(linked) is None


def test_a_record_announcing_endless_nulls_is_delivered_marked_at_once():
    """The pinned example: a block count of 2**62 in six bytes, for an array of nulls."""
    schema = RegisteredSchema(json.dumps(record_of({"type": "array", "items": "null"})), "AVRO")
    decoder = decoder_of(DictRegistry({7: schema}))
    varint = bytearray()
    zigzag = 2**62 << 1  # Avro's zigzag of a positive count
    while zigzag > 0x7F:
        varint.append((zigzag & 0x7F) | 0x80)
        zigzag >>= 7
    varint.append(zigzag)
    record = Record(b"\x00\x00\x00\x00\x07" + bytes(varint))
    asyncio.run(decoder.prepare([record]))
    payload = record_decode(record, decoder)
    assert payload["value_format"] == "registry_undecoded"
    assert payload["value_error"] == "invalid: " + ZERO_WIDTH_ITEMS.format(items="null")
