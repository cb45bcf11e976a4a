"""What a client must see of any Kafka record: the strict-JSON frame contract, from the raw record.

Every record arrives as one `domain_event` frame at its topic/partition/offset, and the frame's
`data:` is strict JSON. A value is `json` only when it is strict JSON itself: UTF-8, no `NaN` or
`Infinity`, no number that overflows a double (`1e400`), no integer outside 64 bits, no duplicate
key, no lone surrogate (`"\\ud800"`), nested at most `MAX_DEPTH` deep. Any other UTF-8 value is
`text` (the original text), other bytes are `base64`, no value (or an empty one) is `empty`.
`type` is the value's `type` when the value is a `json` object with a string `type`, else null;
a record whose `type` is null never matches a `kind=` or `where=` filter. A key and each header
value is `null` (none), the text (UTF-8 bytes, empty ones included) or `{"base64": "<data>"}`
(any other bytes), so no two inputs look alike (`bytes_of` reads them back); a repeated header
name gives a list.

The fleet's `wants` predicates decide with `event_type` and `json_value` what a client is owed.
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Iterable
from typing import Any, Protocol

# The contract fixes only that 150 levels are too deep; no injected or produced value comes
# near whichever limit the service chooses below that, so this one needs no exact agreement.
MAX_DEPTH = 100
INTEGER_MIN, INTEGER_MAX = -(1 << 63), (1 << 64) - 1  # what msgpack carries: int64 or uint64


class RawRecord(Protocol):
    key: bytes | None
    value: bytes | None
    headers: Iterable[tuple[str, bytes | None]]


class NotStrict(ValueError):
    """The text parses as Python's lenient JSON, but not as strict JSON."""


def _constant(name: str) -> Any:
    raise NotStrict(f"{name} is not JSON")


def _float(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise NotStrict(f"{text} overflows a double")
    return number


def _int(text: str) -> int:
    number = int(text)
    if not INTEGER_MIN <= number <= INTEGER_MAX:
        raise NotStrict(f"{text[:20]}... is beyond 64 bits")
    return number


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    names = [name for name, _ in pairs]
    if len(set(names)) != len(names):
        raise NotStrict("duplicate key")
    return dict(pairs)


def _check(value: Any) -> None:
    """No lone surrogate in any string or key, no nesting deeper than MAX_DEPTH."""
    pending = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if depth > MAX_DEPTH:
            raise NotStrict("nested too deep")
        if isinstance(item, str) and any("\ud800" <= char <= "\udfff" for char in item):
            raise NotStrict("lone surrogate")
        if isinstance(item, dict):
            pending += [(name, depth) for name in item]
            pending += [(child, depth + 1) for child in item.values()]
        elif isinstance(item, list):
            pending += [(child, depth + 1) for child in item]


def strict_json(text: str) -> Any:
    """The value of `text` as strict JSON; raises ValueError (NotStrict) when it is not."""
    try:
        value = json.loads(
            text, parse_constant=_constant, parse_float=_float, parse_int=_int, object_pairs_hook=_object
        )
    except RecursionError as error:
        raise NotStrict("nested too deep") from error
    _check(value)
    return value


def value_expected(raw: bytes | None) -> tuple[Any, str]:
    """The frame's `value` and `value_format` for a record value."""
    if not raw:
        return None, "empty"
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return base64.b64encode(raw).decode("ascii"), "base64"
    try:
        return strict_json(text), "json"
    except ValueError:
        return text, "text"


def bytes_expected(raw: bytes | None) -> str | dict[str, str] | None:
    """A key or header value: null for none, the text when UTF-8, else `{"base64": <data>}`."""
    if raw is None:
        return None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return {"base64": base64.b64encode(raw).decode("ascii")}


def bytes_of(encoded: Any) -> bytes | None:
    """What a client reads back from a key or header value: the producer's bytes, or None."""
    if encoded is None:
        return None
    if isinstance(encoded, str):
        return encoded.encode("utf-8")
    if isinstance(encoded, dict) and set(encoded) == {"base64"}:
        return base64.b64decode(encoded["base64"], validate=True)
    raise ValueError(f"not an encoded key or header value: {encoded!r}")


def headers_expected(headers: Iterable[tuple[str, bytes | None]]) -> dict[str, Any]:
    decoded: dict[str, Any] = {}
    for name, raw in headers:
        value = bytes_expected(raw)
        if name not in decoded:
            decoded[name] = value
        elif isinstance(decoded[name], list):
            decoded[name].append(value)
        else:
            decoded[name] = [decoded[name], value]
    return decoded


def json_value(record: RawRecord) -> Any:
    """The record's value when it is strict JSON, else None (`where=` then never matches)."""
    value, value_format = value_expected(record.value)
    return value if value_format == "json" else None


def event_type(record: RawRecord) -> str | None:
    """The frame's `type`: a strict-JSON object's string `type` field, else None."""
    value = json_value(record)
    if isinstance(value, dict) and isinstance(value.get("type"), str):
        return value["type"]
    return None


def payload_expected(record: RawRecord) -> dict[str, Any]:
    value, value_format = value_expected(record.value)
    return {
        "kind": "domain_event",
        "key": bytes_expected(record.key),
        "headers": headers_expected(record.headers),
        "type": event_type(record),
        "value": value,
        "value_format": value_format,
    }


def frame_problems(data: str, record: RawRecord) -> list[str]:
    """How one frame's `data:` text differs from the contract for `record` (empty: it agrees)."""
    problems = []
    try:
        payload = strict_json(data)
    except ValueError as error:
        problems.append(f"frame data is not strict JSON ({error})")
        payload = json.loads(data)  # the client read it: say what else is wrong
    owed = payload_expected(record)
    return problems + [
        f"{name}: got {str(payload.get(name))[:80]!r}, want {str(owed[name])[:80]!r}"
        for name in owed if payload.get(name) != owed[name]
    ]
