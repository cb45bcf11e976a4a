"""The chaos run's idea of what a client must get of each record (tests/support/record_contract.py)."""

from __future__ import annotations

import base64
import json

import pytest

from tests.support import record_contract
from tests.support.chaos_injections import HOSTILE_RECORDS, foreign_messages
from tests.support.faults import Record, typed_value


def record(value: bytes | None, key: bytes | None = None, headers=()) -> Record:
    return Record(0, 0, key, value, tuple(headers))


@pytest.mark.parametrize(
    "name", ["lone-surrogate", "nan", "float-overflow", "int-beyond-64-bits", "duplicate-key", "nested-150"]
)
def test_values_that_are_not_strict_json_are_text_with_no_type(name):
    raw = HOSTILE_RECORDS[name].value
    owed = record_contract.payload_expected(record(raw))
    assert (owed["value_format"], owed["value"], owed["type"]) == ("text", raw.decode(), None)


def test_bytes_that_are_not_utf8_are_base64_and_binary_keys_and_headers_are_objects():
    hostile = HOSTILE_RECORDS["not-utf8"]
    owed = record_contract.payload_expected(record(hostile.value))
    assert (owed["value_format"], owed["type"]) == ("base64", None)
    assert base64.b64decode(owed["value"]) == hostile.value
    binary_key = HOSTILE_RECORDS["binary-key"]
    owed = record_contract.payload_expected(record(binary_key.value, key=binary_key.key))
    assert owed["key"] == {"base64": base64.b64encode(binary_key.key).decode()}
    assert record_contract.bytes_of(owed["key"]) == binary_key.key
    assert owed["type"] == "deal.won"  # a valid value keeps its type, whatever the key
    header = HOSTILE_RECORDS["binary-header"]
    owed = record_contract.payload_expected(record(header.value, headers=header.headers))
    assert owed["headers"] == {"chaos-bin": {"base64": "/wD+"}, "event-type": "deal.won"}


def test_keys_and_header_values_that_looked_alike_are_told_apart():
    owed = record_contract.payload_expected(
        record(b"{}", key=b"base64:/w==", headers=[("n", None), ("e", b""), ("b", b"\xff\xfe"), ("t", b"base64://4=")])
    )
    assert owed["key"] == "base64:/w=="
    assert owed["headers"] == {"n": None, "e": "", "b": {"base64": "//4="}, "t": "base64://4="}
    assert [record_contract.bytes_of(v) for v in owed["headers"].values()] == [None, b"", b"\xff\xfe", b"base64://4="]
    with pytest.raises(ValueError, match="not an encoded key"):
        record_contract.bytes_of({"base64": "/w==", "extra": 1})


def test_strict_json_keeps_what_is_fine():
    value = record_contract.strict_json('{"a": [1, 2.5, -9223372036854775808, "\\ud83d\\ude00"], "b": null}')
    assert value == {"a": [1, 2.5, -(1 << 63), "\U0001f600"], "b": None}
    assert record_contract.event_type(record(typed_value(6))) == "deal.stage_changed"
    assert record_contract.event_type(record(b'{"type": 7}')) is None
    assert record_contract.value_expected(b"") == (None, "empty")
    assert record_contract.value_expected(None) == (None, "empty")


def test_a_frame_is_checked_for_strict_json_and_every_field():
    raw = HOSTILE_RECORDS["float-overflow"].value
    lenient = json.dumps({"kind": "domain_event", "key": None, "headers": {}, "type": "deal.won",
                          "value": {"type": "deal.won", "n": float("inf")}, "value_format": "json"})
    assert record_contract.frame_problems(lenient, record(raw))[0].startswith("frame data is not strict JSON")
    good = json.dumps({"kind": "domain_event", "key": None, "headers": {}, "type": None,
                       "value": raw.decode(), "value_format": "text"})
    assert record_contract.frame_problems(good, record(raw)) == []


def test_foreign_messages_are_plain_data_the_layer_can_carry():
    import msgpack

    for message in foreign_messages("t").values():
        msgpack.packb(message, use_bin_type=True)
