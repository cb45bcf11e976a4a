"""Resume ids: where a stream stands, sent as the `id:` of every frame.

Version 2, the usual one, names a point in the positions log (`core/position_log.py`):
  version (1 byte) | log tag (2 bytes) | batch | segment + 1 (0: the whole batch)
  | offset (only with a segment) | checksum (3 bytes)
with the numbers as unsigned varints, so its size does not grow with the number of topics
or partitions. The log tag is a hash of the positions topic's name, so an id from another
deployment is refused rather than read against the wrong log. Resolving the point into
positions needs the log, which `crm_events/kafka/position_log.py` reads.

Version 1 spells the positions out: per topic, a name hash (4 bytes), then (partition,
next offset) pairs. A stream whose positions no log point describes (one still catching
up, say) gets one, and ids issued before version 2 keep resuming. Decoding maps hashes
back to the topics the stream serves, so a token naming any other topic is rejected.

Both end with a checksum that catches truncation and tampering; it is not a secret
(positions are not privileges: a client may ask for any offset with `offset=` anyway,
and topic access is checked separately). Both are base64url without padding.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Iterable, Mapping

from crm_events.core.position_log import Between, LogPoint, Ref, Registered
from crm_events.core.positions import MAX_OFFSET, Position

TOKEN_VERSION = 1
TOKEN_VERSION_LOG = 2
TOKEN_VERSION_BETWEEN = 3
REF_POINT = 0
REF_REGISTERED = 1
TOPIC_HASH_BYTES = 4
LOG_TAG_BYTES = 2
CHECKSUM_BYTES = 3
# Version 1 grows with the partitions: 2,000 partitions at offsets near 2^62 stay below this.
MAX_TOKEN_CHARS = 65536


TOKEN_NOT_BASE64 = "resume token is not valid base64url"
TOKEN_TOO_LONG = "resume token is too long"
TOKEN_TRUNCATED = "resume token is truncated"
TOKEN_CHECKSUM = "resume token failed its checksum (corrupted or altered)"
TOKEN_VERSION_UNKNOWN = (
    "resume token version {version} is not supported (this server speaks versions 1 to 3)"
)
TOKEN_TRAILING = "resume token has trailing bytes"
TOKEN_UNKNOWN_TOPIC = "resume token names a topic this stream does not serve"
TOKEN_BAD_NUMBER = "resume token holds an out-of-range number"
TOKEN_OTHER_LOG = "resume token belongs to another deployment's positions log"


class ResumeTokenError(ValueError):
    """The token cannot be used; the message says why and is safe to show the client."""


def topic_hash(topic: str) -> bytes:
    return hashlib.blake2b(topic.encode("utf-8"), digest_size=TOPIC_HASH_BYTES).digest()


def _checksum(body: bytes) -> bytes:
    return hashlib.blake2b(body, digest_size=CHECKSUM_BYTES).digest()


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def token_encode(positions: Mapping[Position, int]) -> str:
    """Encode next offsets by (topic, partition) into a token."""
    by_topic: dict[str, list[tuple[int, int]]] = {}
    for (topic, partition), offset in positions.items():
        by_topic.setdefault(topic, []).append((partition, offset))
    body = bytearray([TOKEN_VERSION])
    body += _varint(len(by_topic))
    for topic in sorted(by_topic):
        body += topic_hash(topic)
        pairs = sorted(by_topic[topic])
        body += _varint(len(pairs))
        for partition, offset in pairs:
            body += _varint(partition) + _varint(offset)
    body += _checksum(bytes(body))
    return base64.urlsafe_b64encode(bytes(body)).rstrip(b"=").decode("ascii")


class _Reader:
    """Reads varints and fixed fields from token bytes, failing with a clear error."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.index = 0

    def varint(self, maximum: int) -> int:
        value = shift = 0
        while True:
            if self.index >= len(self.data):
                raise ResumeTokenError(TOKEN_TRUNCATED)
            byte = self.data[self.index]
            self.index += 1
            value |= (byte & 0x7F) << shift
            shift += 7
            if value > maximum or shift > 70:
                raise ResumeTokenError(TOKEN_BAD_NUMBER)
            if not byte & 0x80:
                return value

    def fixed(self, size: int) -> bytes:
        if self.index + size > len(self.data):
            raise ResumeTokenError(TOKEN_TRUNCATED)
        chunk = self.data[self.index : self.index + size]
        self.index += size
        return chunk


def _token_bytes(token: str) -> bytes:
    if len(token) > MAX_TOKEN_CHARS:
        raise ResumeTokenError(TOKEN_TOO_LONG)
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (binascii.Error, ValueError) as error:
        raise ResumeTokenError(TOKEN_NOT_BASE64) from error
    # urlsafe_b64decode quietly skips characters outside the alphabet; we do not.
    if base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii") != token.rstrip("="):
        raise ResumeTokenError(TOKEN_NOT_BASE64)
    return raw


def _checked_body(token: str) -> bytes:
    """The token's bytes without its checksum, once the checksum holds."""
    raw = _token_bytes(token)
    if len(raw) < 1 + CHECKSUM_BYTES:
        raise ResumeTokenError(TOKEN_TRUNCATED)
    if raw[0] not in (TOKEN_VERSION, TOKEN_VERSION_LOG, TOKEN_VERSION_BETWEEN):
        raise ResumeTokenError(TOKEN_VERSION_UNKNOWN.format(version=raw[0]))
    body, checksum = raw[:-CHECKSUM_BYTES], raw[-CHECKSUM_BYTES:]
    if _checksum(body) != checksum:
        raise ResumeTokenError(TOKEN_CHECKSUM)
    return body


def resume_id_decode(
    token: str, topics: Iterable[str], *, log_topic: str
) -> dict[Position, int] | LogPoint | Between:
    """Decode any version for a stream serving `topics`: the positions a version 1 token
    spells out, the log point a version 2 id names, or the catch-up a version 3 id is in.
    Raises ResumeTokenError if unusable."""
    body = _checked_body(token)
    if body[0] == TOKEN_VERSION_LOG:
        return _log_point_read(body, log_topic)
    if body[0] == TOKEN_VERSION_BETWEEN:
        return _between_read(body, topics, log_topic)
    return _positions_read(body, topics)


def token_decode(token: str, topics: Iterable[str]) -> dict[Position, int]:
    """Decode a version 1 token for a stream serving `topics`; raise ResumeTokenError if unusable."""
    body = _checked_body(token)
    if body[0] != TOKEN_VERSION:
        raise ResumeTokenError(TOKEN_VERSION_UNKNOWN.format(version=body[0]))
    return _positions_read(body, topics)


def _positions_read(body: bytes, topics: Iterable[str]) -> dict[Position, int]:
    names = {topic_hash(topic): topic for topic in topics}
    reader = _Reader(body[1:])
    positions: dict[Position, int] = {}
    for _ in range(reader.varint(maximum=len(names) + 1)):
        topic = names.get(reader.fixed(TOPIC_HASH_BYTES))
        if topic is None:
            raise ResumeTokenError(TOKEN_UNKNOWN_TOPIC)
        for _ in range(reader.varint(maximum=1 << 20)):
            partition = reader.varint(maximum=1 << 31)
            positions[(topic, partition)] = reader.varint(maximum=MAX_OFFSET)
    if reader.index != len(reader.data):
        raise ResumeTokenError(TOKEN_TRAILING)
    return positions


def log_tag(log_topic: str) -> bytes:
    return hashlib.blake2b(log_topic.encode("utf-8"), digest_size=LOG_TAG_BYTES).digest()


def _point_bytes(point: LogPoint) -> bytes:
    if point.segment is None:
        return _varint(point.batch) + _varint(0)
    return _varint(point.batch) + _varint(point.segment + 1) + _varint(point.offset or 0)


def _sealed(body: bytes) -> str:
    body += _checksum(body)
    return base64.urlsafe_b64encode(body).rstrip(b"=").decode("ascii")


def log_token_encode(point: LogPoint, *, log_topic: str) -> str:
    """A version 2 id: a point in the positions log named `log_topic`."""
    return _sealed(bytes([TOKEN_VERSION_LOG]) + log_tag(log_topic) + _point_bytes(point))


def _ref_bytes(ref: Ref) -> bytes:
    if isinstance(ref, LogPoint):
        return _varint(REF_POINT) + _point_bytes(ref)
    return _varint(REF_REGISTERED) + _varint(ref.record)


def between_token_encode(at: Between, *, log_topic: str) -> str:
    """A version 3 id: where a stream caught up partition by partition stands."""
    body = bytes([TOKEN_VERSION_BETWEEN]) + log_tag(log_topic) + _ref_bytes(at.start) + _ref_bytes(at.target)
    body += topic_hash(at.topic) + _varint(at.partition) + _varint(at.position)
    return _sealed(body)


def _point_read(reader: _Reader) -> LogPoint:
    batch = reader.varint(maximum=MAX_OFFSET)
    segment = reader.varint(maximum=1 << 31)
    if segment == 0:
        return LogPoint(batch)
    return LogPoint(batch, segment - 1, reader.varint(maximum=MAX_OFFSET))


def _ref_read(reader: _Reader) -> Ref:
    kind = reader.varint(maximum=REF_REGISTERED)
    if kind == REF_POINT:
        return _point_read(reader)
    return Registered(reader.varint(maximum=MAX_OFFSET))


def _tag_check(reader: _Reader, log_topic: str) -> None:
    if reader.fixed(LOG_TAG_BYTES) != log_tag(log_topic):
        raise ResumeTokenError(TOKEN_OTHER_LOG)


def _log_point_read(body: bytes, log_topic: str) -> LogPoint:
    reader = _Reader(body[1:])
    _tag_check(reader, log_topic)
    point = _point_read(reader)
    if reader.index != len(reader.data):
        raise ResumeTokenError(TOKEN_TRAILING)
    return point


def _between_read(body: bytes, topics: Iterable[str], log_topic: str) -> Between:
    reader = _Reader(body[1:])
    _tag_check(reader, log_topic)
    start, target = _ref_read(reader), _ref_read(reader)
    topic = {topic_hash(name): name for name in topics}.get(reader.fixed(TOPIC_HASH_BYTES))
    if topic is None:
        raise ResumeTokenError(TOKEN_UNKNOWN_TOPIC)
    partition, position = reader.varint(maximum=1 << 31), reader.varint(maximum=MAX_OFFSET)
    if reader.index != len(reader.data):
        raise ResumeTokenError(TOKEN_TRAILING)
    return Between(start, target, topic, partition, position)
