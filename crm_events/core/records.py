"""Decoding Kafka records into the event payload that clients receive.

Pure Python, no Django: the payload is what goes, as JSON, into an SSE frame's
`data:` field. Its shape is the old service's (`kind`, `topic`, `partition`,
`offset`, `timestamp`, `key`, `headers`, `value`) so its clients keep working.

A record is any bytes, and every record becomes exactly one payload that travels
through the channel layer (msgpack) and re-encodes as strict RFC 8259 JSON in valid
UTF-8. `value_format` says honestly what was done with the value:

- `json`: RFC 8259 JSON that the service carries unchanged: valid UTF-8, no `NaN` or
  `Infinity`, every number a finite double or an integer of at most 64 bits, no lone
  surrogate escapes, no repeated names in an object, nesting at most `MAX_VALUE_DEPTH`;
- `text`: UTF-8 that is not such JSON (the original text, untouched);
- `base64`: bytes that are not UTF-8;
- `empty`: no value (a tombstone, or zero bytes);
- `avro`, `protobuf`, `json_schema`: a value in the Confluent wire format (magic byte 0, a
  4-byte schema id), decoded with its schema from the Schema Registry into JSON (see
  `crm_events.registry` for the mapping); `value_schema` says which: `{"id", "subject",
  "version"}` (subject and version null when the registry does not say);
- `registry_undecoded`: a value in that wire format that could not be decoded (an id the
  registry does not know, a registry out of reach, bytes that do not fit the schema): the
  bytes in standard base64, `value_schema` with the id, and `value_error` saying why;
- `undecodable`: a record the Kafka client could not even parse (see
  `UnparseableRecord`), or one with a header name that is not valid Unicode; it is
  delivered with its position and the reason, so a client's position moves past it
  and nothing after it is held up.

A key in the wire format is decoded the same way, when a registry is configured: `key` is then
the decoded JSON, and `key_format` and `key_schema` (and `key_error`) say so, as for the value.

The key (any other) and each header value are encoded so that no two inputs look alike (see
`bytes_encode`): `null` for none, the text for UTF-8, `{"base64": ...}` for other bytes.
Header names are the producer's text, unchanged.
"""

from __future__ import annotations

import base64
import json
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

KIND_DOMAIN_EVENT = "domain_event"

VALUE_JSON = "json"
VALUE_TEXT = "text"
VALUE_BASE64 = "base64"
VALUE_EMPTY = "empty"
VALUE_UNDECODABLE = "undecodable"
VALUE_AVRO = "avro"
VALUE_PROTOBUF = "protobuf"
VALUE_JSON_SCHEMA = "json_schema"
VALUE_REGISTRY_UNDECODED = "registry_undecoded"
# What a value or key in the Confluent wire format becomes (`key_format` takes only these).
REGISTRY_FORMATS = frozenset({VALUE_AVRO, VALUE_PROTOBUF, VALUE_JSON_SCHEMA, VALUE_REGISTRY_UNDECODED})
VALUE_FORMATS = REGISTRY_FORMATS | {VALUE_JSON, VALUE_TEXT, VALUE_BASE64, VALUE_EMPTY, VALUE_UNDECODABLE}

# The one name of the object that carries a key or header value that is not UTF-8.
BINARY_FIELD = "base64"
# A key or header value as clients see it (see `bytes_encode`), and a header's value(s).
EncodedBytes = str | dict[str, str] | None
HeaderValue = EncodedBytes | list[EncodedBytes]

HEADER_NAME_INVALID = "a header name is not valid Unicode text"

# Deeper values travel as text: msgpack (the channel layer) refuses nesting past 511
# levels, and no CRM payload is anywhere near this.
MAX_VALUE_DEPTH = 100
# What msgpack can carry: signed and unsigned 64-bit integers.
INT_MIN = -(1 << 63)
INT_MAX = (1 << 64) - 1
# A JSON escape of a UTF-16 surrogate: the only way a lone surrogate gets into a str.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


class KafkaRecord(Protocol):
    """The parts of `aiokafka.ConsumerRecord` that decoding reads."""

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def timestamp(self) -> int: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...
    @property
    def headers(self) -> Iterable[tuple[str, bytes | None]]: ...


@dataclass(frozen=True, slots=True)
class UnparseableRecord:
    """Stands in for a record the Kafka client failed to parse (a header name that is
    not UTF-8, say): only its position is known, and why it could not be read."""

    topic: str
    partition: int
    offset: int
    error: str
    timestamp: int = -1
    key: None = None
    value: None = None
    headers: tuple[()] = ()


@dataclass(frozen=True, slots=True)
class WireDecoded:
    """A value or key in the Confluent wire format as clients see it: the decoded JSON (or, when
    it could not be decoded, the bytes in base64 and the reason), its format and its schema."""

    value: Any
    format: str
    schema: dict[str, Any]
    error: str | None = None


class WireDecoder(Protocol):
    """Decodes values in the Confluent wire format (`crm_events.registry.RegistryDecoder`)."""

    def wire_decode(self, raw: bytes | None) -> WireDecoded | None:
        """The decoded value, or None when `raw` is not in the wire format. Never raises."""
        ...


class _NotFaithful(ValueError):
    """JSON that Python reads but that would not come out the same on the other side."""


def _finite_float(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):  # 1e400 parses to inf, which JSON cannot write
        raise _NotFaithful(f"{text} overflows a double")
    return number


def _int_in_range(text: str) -> int:
    number = int(text)  # over 4,300 digits Python itself refuses, with a ValueError
    if not INT_MIN <= number <= INT_MAX:
        raise _NotFaithful("integer beyond 64 bits")
    return number


def _reject_constant(name: str) -> None:
    raise _NotFaithful(f"{name} is not JSON")


def _unique_names(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    members = dict(pairs)
    if len(members) != len(pairs):
        raise _NotFaithful("an object repeats a name")
    return members


# Built once and shared, as json.loads shares its default decoder: json.loads given hooks builds
# a new decoder, and its scanner, for every value.
_FAITHFUL_DECODER = json.JSONDecoder(
    parse_constant=_reject_constant, parse_float=_finite_float,
    parse_int=_int_in_range, object_pairs_hook=_unique_names,
)


def _depth_within(value: Any, limit: int) -> bool:
    """Whether containers nest at most `limit` deep (iteratively: no recursion limit)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth > limit:
                return False
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return True


def _strings_valid(value: Any) -> bool:
    """Whether every string (names included) is valid Unicode: no lone surrogates."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if not item.isascii():
                try:
                    item.encode("utf-8")
                except UnicodeEncodeError:
                    return False
        elif isinstance(item, dict):
            stack.extend(item)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return True


def json_faithful_loads(text: str) -> Any:
    """Parse `text` if it is JSON the service can carry unchanged; else raise ValueError."""
    value = _FAITHFUL_DECODER.decode(text)
    # Cheap text-level bounds first; the walks run only when those cannot rule it out.
    if text.count("[") + text.count("{") > MAX_VALUE_DEPTH and not _depth_within(value, MAX_VALUE_DEPTH):
        raise _NotFaithful("nested too deep")
    if _SURROGATE_ESCAPE.search(text) and not _strings_valid(value):
        raise _NotFaithful("a lone surrogate escape")
    return value


def value_decode(raw: bytes | None) -> tuple[Any, str]:
    """Return the value as clients see it and the format it was found in."""
    if not raw:
        return None, VALUE_EMPTY
    try:
        text = raw.decode("utf-8")  # strict: encoded surrogates are refused here too
    except UnicodeDecodeError:
        return base64.b64encode(raw).decode("ascii"), VALUE_BASE64
    try:
        return json_faithful_loads(text), VALUE_JSON
    except (ValueError, RecursionError):
        # RecursionError: absurdly deep nesting is still just text to us.
        return text, VALUE_TEXT


def bytes_encode(raw: bytes | None) -> EncodedBytes:
    """A key or header value as clients see it: one JSON value per input, never the same
    for two inputs. None is `null`; bytes that are UTF-8 are the text (the strict decoder
    refuses encoded surrogates, so the text is valid Unicode that JSON carries as it is);
    any other bytes are `{"base64": "<standard base64>"}`, an object no text can become."""
    if raw is None:
        return None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return {BINARY_FIELD: base64.b64encode(raw).decode("ascii")}


def header_names_valid(headers: Iterable[tuple[object, bytes | None]]) -> bool:
    """Whether every header name is text that JSON carries as it is (a Kafka header name
    is UTF-8 text; aiokafka already refuses one that is not, see `UnparseableRecord`)."""
    return all(isinstance(name, str) and (name.isascii() or _strings_valid(name)) for name, _ in headers)


def headers_decode(headers: Iterable[tuple[str, bytes | None]]) -> dict[str, HeaderValue]:
    """Header values as `bytes_encode` gives them; a repeated name collects its values in a
    list (never a value itself: encoded values are null, text or an object)."""
    decoded: dict[str, HeaderValue] = {}
    for name, raw in headers:
        value = bytes_encode(raw)
        if name not in decoded:
            decoded[name] = value
        elif isinstance(present := decoded[name], list):
            present.append(value)
        else:
            decoded[name] = [present, value]
    return decoded


def event_type_of(value: Any) -> str | None:
    """The domain event type, `deal.won` say, when the value carries one in `type`."""
    if isinstance(value, dict):
        event_type = value.get("type")
        if isinstance(event_type, str):
            return event_type
    return None


def undecodable_payload(*, topic: str, partition: int, offset: int, error: str) -> dict[str, Any]:
    """The payload of a record that cannot be delivered as it is: its position and why."""
    return {
        "kind": KIND_DOMAIN_EVENT, "topic": topic, "partition": partition, "offset": offset,
        "timestamp": -1, "key": None, "headers": {}, "type": None, "value": None,
        "value_format": VALUE_UNDECODABLE, "error": error,
    }


def _wire_fields(decoded: WireDecoded, prefix: str) -> dict[str, Any]:
    fields: dict[str, Any] = {f"{prefix}_schema": decoded.schema}
    if decoded.error is not None:
        fields[f"{prefix}_error"] = decoded.error
    return fields


def record_decode(record: KafkaRecord, wire: WireDecoder | None = None) -> dict[str, Any]:
    """Build the client payload of one Kafka record. Never raises for bad content.

    With `wire`, a value or key in the Confluent wire format is decoded with its schema."""
    if isinstance(record, UnparseableRecord):
        return undecodable_payload(
            topic=record.topic, partition=record.partition, offset=record.offset, error=record.error
        )
    headers = list(record.headers or ())
    if not header_names_valid(headers):
        return undecodable_payload(
            topic=record.topic, partition=record.partition, offset=record.offset, error=HEADER_NAME_INVALID
        )
    value_wire = wire.wire_decode(record.value) if wire is not None else None
    key_wire = wire.wire_decode(record.key) if wire is not None else None
    if value_wire is None:
        value, value_format = value_decode(record.value)
    else:
        value, value_format = value_wire.value, value_wire.format
    payload = {
        "kind": KIND_DOMAIN_EVENT,
        "topic": record.topic,
        "partition": record.partition,
        "offset": record.offset,
        "timestamp": record.timestamp,
        "key": bytes_encode(record.key) if key_wire is None else key_wire.value,
        "headers": headers_decode(headers),
        "type": event_type_of(value),
        "value": value,
        "value_format": value_format,
    }
    if value_wire is not None:
        payload.update(_wire_fields(value_wire, "value"))
    if key_wire is not None:
        payload["key_format"] = key_wire.format
        payload.update(_wire_fields(key_wire, "key"))
    return payload
