"""Avro data, as fastavro reads it, mapped to strict JSON.

- bytes and fixed: standard base64 text (as the proto3 JSON mapping writes bytes), since no JSON
  string can hold raw bytes and Avro's own JSON encoding (one char per byte) reads as mojibake;
- decimal (bytes or fixed): the exact decimal as a string (`"12.30"`): a double would round it;
- timestamp-millis/-micros: RFC 3339 text in UTC (`"2026-12-07T05:03:23.123000Z"`);
  local-timestamp-*: the same without the zone; date: `"2026-12-07"`; time-*: `"05:03:23.123000"`;
  uuid: its text;
- unions: the value of the branch, unwrapped (fastavro's default; Avro's JSON encoding's
  `{"type": value}` wrapper would make every optional field an object);
- enums: the symbol; maps: objects; records: objects with the schema's field names;
- float and double: numbers, except NaN and the infinities, which are the strings `"NaN"`,
  `"Infinity"` and `"-Infinity"` (proto3's choice: JSON has no such numbers).
"""

from __future__ import annotations

import base64
import datetime
import decimal
import math
import uuid
from typing import Any

DEPTH_EXCEEDED = "the value nests deeper than {limit} levels"
NOT_UNICODE = "a string is not valid Unicode"
NOT_MAPPED = "an Avro value of type {kind} has no JSON mapping"


class NotMapped(ValueError):
    """A value that cannot become strict JSON."""


def float_json(number: float) -> float | str:
    if math.isfinite(number):
        return number
    if math.isnan(number):
        return "NaN"
    return "Infinity" if number > 0 else "-Infinity"


def _text(value: str) -> str:
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise NotMapped(NOT_UNICODE) from None
    return value


def _datetime(value: datetime.datetime) -> str:
    if value.tzinfo is None:
        return value.isoformat()
    return value.astimezone(datetime.UTC).replace(tzinfo=None).isoformat() + "Z"


def _scalar(value: Any) -> Any:
    """The JSON of one scalar, by type (bool before int: it is one)."""
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, str):
        return _text(value)
    if isinstance(value, float):
        return float_json(value)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, datetime.datetime):
        return _datetime(value)
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    raise NotMapped(NOT_MAPPED.format(kind=type(value).__name__))


def avro_to_json(value: Any, *, limit: int, depth: int = 1) -> Any:
    """The strict-JSON form of one Avro datum; NotMapped when there is none."""
    if isinstance(value, dict):
        if depth > limit:
            raise NotMapped(DEPTH_EXCEEDED.format(limit=limit))
        return {_text(name): avro_to_json(item, limit=limit, depth=depth + 1) for name, item in value.items()}
    if isinstance(value, list):
        if depth > limit:
            raise NotMapped(DEPTH_EXCEEDED.format(limit=limit))
        return [avro_to_json(item, limit=limit, depth=depth + 1) for item in value]
    return _scalar(value)
