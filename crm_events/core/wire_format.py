"""The Confluent wire format: magic byte 0, a 4-byte big-endian schema id, then the encoded value.

Pure framing, no schemas: which schema id a value names, and, for Protobuf, which message of the
schema's file it is (the message-index path, zigzag varints, right after the id). Decoding with
the schema is `crm_events.registry`'s job; what a record looks like once decoded, `records.py`'s.
"""

from __future__ import annotations

from dataclasses import dataclass

MAGIC = 0
HEADER_SIZE = 5
# A Protobuf message path deeper than this is not a schema anyone wrote: refuse it, cheaply.
MAX_MESSAGE_INDEXES = 64

INDEXES_TRUNCATED = "the Protobuf message indexes end before they say"
INDEXES_TOO_MANY = "more Protobuf message indexes than any schema nests"
VARINT_TOO_LONG = "a varint longer than 64 bits"


@dataclass(frozen=True, slots=True)
class Framed:
    """A value that names its schema: the id, and the encoded bytes after the header."""

    schema_id: int
    body: bytes


def framed_parse(raw: bytes | None) -> Framed | None:
    """The schema id and body of a value in the wire format, or None for any other value."""
    if raw is None or len(raw) < HEADER_SIZE or raw[0] != MAGIC:
        return None
    return Framed(schema_id=int.from_bytes(raw[1:HEADER_SIZE], "big"), body=raw[HEADER_SIZE:])


def _varint_read(data: bytes, at: int) -> tuple[int, int]:
    """An unsigned varint at `at`, and where the next byte is; ValueError if cut short or too long."""
    result = shift = 0
    while True:
        if at >= len(data):
            raise ValueError(INDEXES_TRUNCATED)
        byte = data[at]
        at += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, at
        shift += 7
        if shift >= 64:
            raise ValueError(VARINT_TOO_LONG)


def _zigzag(value: int) -> int:
    return (value >> 1) ^ -(value & 1)


def message_indexes_parse(body: bytes) -> tuple[tuple[int, ...], bytes]:
    """The Protobuf message path and the message bytes after it.

    The path is a count then that many indexes (zigzag varints): the first indexes the file's
    top-level messages, each next one the nested messages of the one before. A count of 0 (one
    byte, the common case) means the file's first message.
    """
    count, at = _varint_read(body, 0)
    count = _zigzag(count)
    if count == 0:
        return (0,), body[at:]
    if count < 0 or count > MAX_MESSAGE_INDEXES:
        raise ValueError(INDEXES_TOO_MANY)
    indexes = []
    for _ in range(count):
        index, at = _varint_read(body, at)
        indexes.append(_zigzag(index))
    return tuple(indexes), body[at:]
