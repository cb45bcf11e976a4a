import base64
from dataclasses import dataclass, field

import pytest

from crm_events.core.records import record_decode


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
    assert event["key"] == "base64:/w=="
    assert event["headers"] == {"h": ["1", "2"], "b": "base64:/w=="}


def test_null_key():
    assert record_decode(Record(b"{}", key=None))["key"] is None
