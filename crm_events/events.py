"""Decoding Kafka records into the event payload that clients receive.

Pure Python, no Django: the payload is what goes, as JSON, into an SSE frame's
`data:` field. Its shape is the old service's (`kind`, `topic`, `partition`,
`offset`, `timestamp`, `key`, `headers`, `value`) so its clients keep working.
No record is ever dropped for its content: a value that is not JSON is delivered
as text, or as base64 when it is not UTF-8, and `value_format` says which.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable
from typing import Any, Protocol

KIND_DOMAIN_EVENT = "domain_event"

VALUE_JSON = "json"
VALUE_TEXT = "text"
VALUE_BASE64 = "base64"
VALUE_EMPTY = "empty"


class KafkaRecord(Protocol):
    """The parts of `aiokafka.ConsumerRecord` that decoding reads."""

    topic: str
    partition: int
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    headers: Iterable[tuple[str, bytes]]


def value_decode(raw: bytes | None) -> tuple[Any, str]:
    """Return the value as clients see it and the format it was found in."""
    if not raw:
        return None, VALUE_EMPTY
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return base64.b64encode(raw).decode("ascii"), VALUE_BASE64
    try:
        return json.loads(text, parse_constant=_constant_reject), VALUE_JSON
    except (ValueError, RecursionError):
        # RecursionError: absurdly deep nesting is still just text to us.
        return text, VALUE_TEXT


def _constant_reject(name: str) -> None:
    # NaN and Infinity parse in Python but are not JSON: browsers would choke on them.
    raise ValueError(f"{name} is not JSON")


def key_decode(raw: bytes | None) -> str | None:
    """Keys are text in practice; a binary key comes as `base64:<data>` rather than lost."""
    if raw is None:
        return None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return "base64:" + base64.b64encode(raw).decode("ascii")


def headers_decode(headers: Iterable[tuple[str, bytes]]) -> dict[str, str | list[str]]:
    """Header values as text; a repeated header name collects its values in a list."""
    decoded: dict[str, str | list[str]] = {}
    for name, raw in headers:
        value = key_decode(raw) or ""
        if name not in decoded:
            decoded[name] = value
        elif isinstance(decoded[name], list):
            decoded[name].append(value)  # type: ignore[union-attr]
        else:
            decoded[name] = [decoded[name], value]  # type: ignore[list-item]
    return decoded


def event_type_of(value: Any) -> str | None:
    """The domain event type, `deal.won` say, when the value carries one in `type`."""
    if isinstance(value, dict):
        event_type = value.get("type")
        if isinstance(event_type, str):
            return event_type
    return None


def record_decode(record: KafkaRecord) -> dict[str, Any]:
    """Build the client payload of one Kafka record. Never raises for bad content."""
    value, value_format = value_decode(record.value)
    return {
        "kind": KIND_DOMAIN_EVENT,
        "topic": record.topic,
        "partition": record.partition,
        "offset": record.offset,
        "timestamp": record.timestamp,
        "key": key_decode(record.key),
        "headers": headers_decode(record.headers or ()),
        "type": event_type_of(value),
        "value": value,
        "value_format": value_format,
    }
