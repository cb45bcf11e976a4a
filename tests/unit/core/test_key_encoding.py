"""Keys and header values: every input (None, any bytes, any text, text that looks like a
marker) gives its own strict-JSON value, which reads back to exactly that input, and every
record so encoded passes the layer's record check (issue 18, item 4)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import pytest
from channels_redis.serializers import registry
from hypothesis import example, given, settings
from hypothesis import strategies as st

from crm_events.core import messages as broadcast
from crm_events.core.records import bytes_encode, record_decode
from tests.support.record_contract import bytes_expected, bytes_of

LAYER = registry.get_serializer("msgpack")
SERVED = frozenset({"t"})

# Text that looks like a marker, old or new, or like JSON the encoding writes.
MARKERS = ["", "base64:", "base64:/w==", "base64://4=", '{"base64":"/w=="}', "null", "[]", "{}", "\ufeff"]
texts = st.one_of(
    st.text(), st.sampled_from(MARKERS), st.builds(str.__add__, st.sampled_from(MARKERS), st.text())
)
# Encoded surrogates (lone, and CESU-8 pairs), an overlong NUL and a code point past U+10FFFF:
# bytes a lenient decoder would turn into text.
NEAR_UTF8 = [b"\xed\xa0\x80", b"\xed\xbf\xbf", b"\xed\xa0\xbd\xed\xb8\x80", b"\xc0\x80", b"\xf4\x90\x80\x80"]
opaque = st.one_of(
    st.none(),
    st.binary(),
    texts.map(str.encode),
    st.sampled_from(NEAR_UTF8),
    st.builds(bytes.__add__, st.sampled_from([b"base64:", b'{"base64":"']), st.binary()),
)


def strict_json_round_trip(value: object) -> object:
    """Through RFC 8259 text in valid UTF-8 and back, refusing NaN and lone surrogates."""
    text = json.dumps(value, ensure_ascii=False, allow_nan=False)
    return json.loads(text.encode("utf-8").decode("utf-8"))


@settings(max_examples=1000)
@given(raw=opaque)
@example(raw=None)
@example(raw=b"")
@example(raw=b"\xff\xfe")
@example(raw=b"base64://4=")
def test_every_key_or_header_value_reads_back_as_itself_after_strict_json_and_the_layer(raw):
    encoded = bytes_encode(raw)
    assert encoded == bytes_expected(raw)  # the contract the tests hold clients to
    carried = LAYER.deserialize(LAYER.serialize({"v": encoded}))["v"]
    assert bytes_of(strict_json_round_trip(carried)) == raw


@settings(max_examples=500)
@given(first=opaque, second=opaque)
@example(first=None, second=b"")
@example(first=b"\xff\xfe", second=b"base64://4=")
@example(first=b"\xff", second=b"base64:/w==")
def test_two_different_inputs_never_give_the_same_json(first, second):
    def text(raw):
        return json.dumps(bytes_encode(raw), sort_keys=True)

    assert (text(first) == text(second)) == (first == second)


@dataclass
class Record:
    value: bytes | None
    key: bytes | None
    headers: list = field(default_factory=list)
    topic: str = "t"
    partition: int = 0
    offset: int = 0
    timestamp: int = 0


@settings(max_examples=300)
@given(
    key=opaque,
    headers=st.lists(st.tuples(st.sampled_from(["a", "b", "base64:x", ""]), opaque), max_size=6),
)
@example(key=None, headers=[("a", None), ("a", b""), ("a", b"\xff")])
def test_the_layer_check_accepts_every_encoded_record_and_headers_read_back(key, headers):
    event = record_decode(Record(b"{}", key, headers))
    item = LAYER.deserialize(LAYER.serialize(broadcast.record_item(event, prev=0, size=1)))
    assert broadcast.record_item_check(item, served=SERVED) is None
    read = strict_json_round_trip(item["event"])
    assert bytes_of(read["key"]) == key
    values: dict[str, list] = {}
    for name, raw in headers:
        values.setdefault(name, []).append(raw)
    assert {
        name: [bytes_of(v) for v in (value if isinstance(value, list) else [value])]
        for name, value in read["headers"].items()
    } == values


def _event(**changes: object) -> dict:
    event = record_decode(Record(b"{}", b"k", [("h", b"v")]))
    return {"prev": 0, "size": 1, "event": {**event, **changes}}


@pytest.mark.parametrize(
    "changes",
    [
        {"key": 5}, {"key": ["k"]}, {"key": {}}, {"key": {"base64": 5}}, {"key": {"base64": ""}},
        {"key": {"base64": "/w=="[:3]}}, {"key": {"base64": "not base64!"}}, {"key": {"text": "k"}},
        {"key": {"base64": "/w==", "text": "k"}}, {"headers": {"h": 5}}, {"headers": {"h": ["only one"]}},
        {"headers": {"h": ["a", ["b", "c"]]}}, {"headers": {"h": {"base64": "/w=", "x": 1}}},
        {"headers": {"h": ["a", {"base64": "%%%="}]}}, {"headers": ["h", "v"]},
    ],
)
def test_the_layer_check_refuses_what_the_encoding_never_writes(changes):
    assert broadcast.record_item_check(_event(**changes), served=SERVED) == broadcast.FOREIGN_RECORD_MALFORMED


@pytest.mark.parametrize(
    "changes",
    [
        {"key": None}, {"key": ""}, {"key": "base64:/w=="}, {"key": {"base64": "/w=="}},
        {"headers": {"h": None, "e": "", "b": {"base64": "//4="}, "r": [None, "", {"base64": "gA=="}]}},
    ],
)
def test_the_layer_check_accepts_each_shape(changes):
    assert broadcast.record_item_check(_event(**changes), served=SERVED) is None
