import base64
from dataclasses import dataclass, field

import pytest

from crm_events.core.records import HEADER_NAME_INVALID, record_decode


@dataclass
class Record:
    value: bytes | None
    key: bytes | None = b"deal-1"
    headers: list = field(default_factory=list)
    topic: str = "t"
    partition: int = 2
    offset: int = 41
    timestamp: int = 1_700_000_000_000


def test_json_record_keeps_the_old_shape():
    record = Record(b'{"type":"deal.won","deal":{"stage":"won"}}', headers=[("source", b"crm")])
    assert record_decode(record) == {
        "kind": "domain_event",
        "topic": "t",
        "partition": 2,
        "offset": 41,
        "timestamp": 1_700_000_000_000,
        "key": "deal-1",
        "headers": {"source": "crm"},
        "type": "deal.won",
        "value": {"type": "deal.won", "deal": {"stage": "won"}},
        "value_format": "json",
    }


@pytest.mark.parametrize(
    ("raw", "value", "value_format"),
    [
        (b"plain text", "plain text", "text"),
        (b"", None, "empty"),
        (None, None, "empty"),
        (b"\xff\xfe\x00", base64.b64encode(b"\xff\xfe\x00").decode(), "base64"),
        (b"NaN", "NaN", "text"),
        (b"[" * 100_000, "[" * 100_000, "text"),
        (b"null", None, "json"),
        (b'"quoted"', "quoted", "json"),
    ],
)
def test_non_json_values_are_delivered_marked(raw, value, value_format):
    event = record_decode(Record(raw))
    assert (event["value"], event["value_format"]) == (value, value_format)
    assert event["type"] is None


def test_binary_key_and_repeated_headers_are_kept():
    event = record_decode(Record(b"{}", key=b"\xff", headers=[("h", b"1"), ("h", b"2"), ("b", b"\xff")]))
    assert event["key"] == {"base64": "/w=="}
    assert event["headers"] == {"h": ["1", "2"], "b": {"base64": "/w=="}}


def test_null_key():
    assert record_decode(Record(b"{}", key=None))["key"] is None


def test_the_inputs_that_used_to_look_alike_now_differ():
    """Issue 18: None and b"" were both "", b"\xff\xfe" and "base64://4=" both "base64://4="."""
    headers = [("n", None), ("e", b""), ("b", b"\xff\xfe"), ("t", b"base64://4=")]
    event = record_decode(Record(b"{}", key=b"base64:/w==", headers=headers))
    assert event["key"] == "base64:/w=="  # text that looks like the old marker is just text
    assert event["headers"] == {"n": None, "e": "", "b": {"base64": "//4="}, "t": "base64://4="}


def test_a_repeated_header_keeps_null_empty_and_binary_values_in_order():
    headers = [("h", None), ("h", b""), ("h", b"\x80"), ("h", b'{"base64": "gA=="}')]
    event = record_decode(Record(b"{}", headers=headers))
    assert event["headers"] == {"h": [None, "", {"base64": "gA=="}, '{"base64": "gA=="}']}


def test_a_header_name_that_is_not_valid_unicode_makes_the_record_undecodable():
    event = record_decode(Record(b'{"type":"deal.won"}', key=b"k", headers=[("\udcff", b"v"), ("ok", b"1")]))
    assert (event["value_format"], event["error"]) == ("undecodable", HEADER_NAME_INVALID)
    assert (event["key"], event["headers"], event["value"], event["type"]) == (None, {}, None, None)
    assert (event["topic"], event["partition"], event["offset"]) == ("t", 2, 41)
