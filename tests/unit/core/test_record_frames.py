"""Any record in, exactly one strict frame out: decode -> layer serialization -> frame.

The channel layer's own serializer (channels-redis, msgpack) carries each payload,
as between `consume_events` and a web process; the frame is parsed back as strict
RFC 8259 JSON from valid UTF-8.
"""

from __future__ import annotations

import base64
import json
import math
from dataclasses import dataclass, field

from channels_redis.serializers import registry
from hypothesis import example, given, settings
from hypothesis import strategies as st

from crm_events.core import messages as broadcast
from crm_events.core.live_event import LiveEvent
from crm_events.core.records import (
    HEADER_NAME_INVALID,
    MAX_VALUE_DEPTH,
    UnparseableRecord,
    json_faithful_loads,
    record_decode,
)
from crm_events.core.tokens import token_encode

LAYER = registry.get_serializer("msgpack")
TOKEN = token_encode({("t", 0): 1})


@dataclass
class Record:
    value: bytes | None
    key: bytes | None = None
    headers: list = field(default_factory=list)
    topic: str = "t"
    partition: int = 0
    offset: int = 0
    timestamp: int = 1_700_000_000_000


def strict_loads(text: str):
    """RFC 8259 only: no NaN/Infinity, and no string that is not valid Unicode."""
    def refuse(name):
        raise AssertionError(f"{name} in a frame")
    value = json.loads(text, parse_constant=refuse)
    json.dumps(value, ensure_ascii=False).encode("utf-8")  # raises on a lone surrogate
    return value


def one_frame(record) -> tuple[dict, bytes]:
    """The record through the whole path; returns the payload the client parses, and the frame."""
    item = broadcast.record_item(record_decode(record), prev=0, size=1)
    message = LAYER.deserialize(LAYER.serialize(broadcast.records_message([item])))
    frame = LiveEvent(message["records"][0]["event"]).frame(TOKEN)
    text = frame.decode("utf-8")  # strict: valid UTF-8
    assert text.endswith("\n\n") and text.count("\n\n") == 1, "exactly one event"
    lines = text[:-2].split("\n")
    assert lines[0] == f"id: {TOKEN}" and len(lines) == 2 and lines[1].startswith("data: ")
    return strict_loads(lines[1].removeprefix("data: ")), frame


json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True, allow_infinity=True), st.text(),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4),
    max_leaves=20,
)


@st.composite
def json_texts(draw) -> str:
    """JSON as producers write it: any values, escaped or not, with Python's NaN/Infinity, plus
    the escapes, numbers, nesting and repeated names Python reads but RFC 8259 or msgpack refuse."""
    crafted = st.sampled_from([
        '{"type":"deal.won","note":"\\ud800"}', '"\\udfff"', '{"\\ud83d":1}', '"\\ud83d\\ude00"',
        '{"type":"deal.won","amount":NaN}', "Infinity", "-Infinity", '{"n":1e400}', "-1e999",
        '{"n":' + "9" * 30 + "}", str(1 << 64), str(-(1 << 63) - 1), "1" * 5000,
        '{"a":1,"a":2}', "[" * (MAX_VALUE_DEPTH + 1) + "]" * (MAX_VALUE_DEPTH + 1),
        "[" * MAX_VALUE_DEPTH + "]" * MAX_VALUE_DEPTH, "[" * 600 + "]" * 600, "[" * 100_000,
        '"\\u0000 nul and \\u2028 separator"', '"data: x\\nid: y\\r\\n\\n"',
    ])
    dumped = json_values.map(lambda value: json.dumps(value, ensure_ascii=draw(st.booleans())))
    return draw(st.one_of(crafted, dumped))


def as_bytes(text: str) -> bytes:
    """A producer's bytes for `text`; a lone surrogate gives the (invalid) UTF-8 bytes some write."""
    return text.encode("utf-8", "surrogatepass")


header_names = st.text(max_size=10)  # aiokafka gives str; a foreign layer may not
header_values = st.one_of(st.none(), st.binary(max_size=20))


@settings(max_examples=500)
@given(
    value=st.one_of(st.none(), st.binary(max_size=300), json_texts().map(as_bytes)),
    key=st.one_of(st.none(), st.binary(max_size=30), st.text(max_size=10).map(str.encode)),
    headers=st.lists(st.tuples(header_names, header_values), max_size=5),
)
@example(value=b'{"type":"deal.won","note":"\\ud800"}', key=None, headers=[])
@example(value=b"\xed\xa0\x80", key=b"\xed\xa0\x80", headers=[("\udcff", b"\xff")])
def test_any_record_gives_exactly_one_strict_json_frame(value, key, headers):
    payload, _frame = one_frame(Record(value, key=key, headers=headers))
    names_valid = all(not any("\ud800" <= char <= "\udfff" for char in name) for name, _ in headers)
    formats = {"json", "text", "base64", "empty"} if names_valid else {"undecodable"}
    assert payload["value_format"] in formats
    assert (payload["topic"], payload["partition"], payload["offset"]) == ("t", 0, 0)


@settings(max_examples=300)
@given(text=json_texts())
@example(text='{"type":"deal.won","note":"\\ud800"}')
def test_a_value_is_json_only_when_it_arrives_unchanged_else_its_original_text(text):
    raw = as_bytes(text)
    payload, _frame = one_frame(Record(raw))
    if payload["value_format"] == "json":
        assert payload["value"] == json.loads(text)
    elif payload["value_format"] == "text":
        assert payload["value"] == text and payload["type"] is None
    else:
        assert payload["value_format"] == "base64"
        assert base64.b64decode(payload["value"]) == raw


def test_what_rfc_8259_or_the_layer_refuse_arrives_as_text():
    for text in (
        '{"type":"deal.won","note":"\\ud800"}', '{"type":"deal.won","amount":NaN}', '{"n":1e400}',
        '{"type":"deal.won","n":' + "1" * 30 + "}", '{"type":"deal.won","a":1,"a":2}',
        "[" * 150 + "]" * 150,
    ):
        payload, _ = one_frame(Record(text.encode()))
        assert (payload["value_format"], payload["value"], payload["type"]) == ("text", text, None), text


def test_what_is_faithful_json_stays_json():
    for text in ('"\\ud83d\\ude00"', '{"n":18446744073709551615}', '{"n":-9223372036854775808}', "1.5e308",
                 "[" * MAX_VALUE_DEPTH + "]" * MAX_VALUE_DEPTH):
        payload, _ = one_frame(Record(text.encode()))
        assert payload["value_format"] == "json", text
        assert payload["value"] == json.loads(text)
        assert not (isinstance(payload["value"], float) and math.isinf(payload["value"]))


def parse_outcome(loads, text: str):
    try:
        return json.dumps(loads(text))
    except ValueError:
        return ValueError


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=3), inner, max_size=4),
    max_leaves=12,
)


@given(st.one_of(JSON_VALUES.map(json.dumps), st.text(max_size=40)))
@example("\ufeff{}")  # a byte order mark: json.loads refuses it by its own check
@example('{"a":1} trailing')
@settings(max_examples=400, deadline=None)
def test_the_shared_decoder_answers_each_text_as_a_fresh_parse_would(text):
    """One decoder serves every value: an answer never depends on the texts parsed before it,
    what it accepts is what json.loads reads, and what json.loads refuses it refuses."""
    first = parse_outcome(json_faithful_loads, text)
    assert parse_outcome(json_faithful_loads, '{"a":1,"a":2}') is ValueError
    assert parse_outcome(json_faithful_loads, text) == first
    plain = parse_outcome(json.loads, text)
    if first is not ValueError or plain is ValueError:
        assert first == plain, text


def test_the_shared_decoder_keeps_every_refusal():
    for text in ('{"a":1,"a":2}', "NaN", '{"n":-Infinity}', "1e400", "\ufeff{}", "{} {}"):
        assert parse_outcome(json_faithful_loads, text) is ValueError, text


def test_a_header_name_that_cannot_travel_makes_the_record_undecodable_and_a_value_is_encoded():
    payload, _ = one_frame(Record(b"{}", headers=[("\udcff", b"v"), ("ok", b"\xff")]))
    assert (payload["value_format"], payload["error"], payload["headers"]) == (
        "undecodable", HEADER_NAME_INVALID, {}
    )
    payload, _ = one_frame(Record(b"{}", headers=[("base64:7bO/", b"v"), ("ok", b"\xff"), ("n", None)]))
    assert payload["headers"] == {"base64:7bO/": "v", "ok": {"base64": "/w=="}, "n": None}


def test_a_record_the_client_could_not_parse_arrives_marked_with_its_position():
    payload, _ = one_frame(UnparseableRecord("t", 0, 0, error="the Kafka client cannot parse it: boom"))
    assert payload == {
        "kind": "domain_event", "topic": "t", "partition": 0, "offset": 0, "timestamp": -1, "key": None,
        "headers": {}, "type": None, "value": None, "value_format": "undecodable",
        "error": "the Kafka client cannot parse it: boom",
    }
