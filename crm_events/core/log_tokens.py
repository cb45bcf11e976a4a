"""Resume ids that name places in the positions log, so their size does not grow with the
number of topics or partitions (`core/position_log.py` says what the log holds).

Version 2, the id of a live stream, names a point in the log:
  version (1 byte) | log tag (2 bytes) | batch | segment + 1 (0: the whole batch)
  | offset (only with a segment) | checksum (3 bytes)
Version 3, the id of a stream caught up partition by partition, names two log references
(a point, or a record of registered positions) and where between them it stands:
  version | log tag | start reference | target reference | topic hash (4 bytes) | partition
  | position | checksum
Version 4, the id of a live stream while its hub stands off the log in a few partitions,
names a point and those partitions' offsets:
  version | log tag | point | count | per partition: topic hash, partition, offset + 1 (0: none)
  | checksum
Numbers are unsigned varints. The log tag is a hash of the positions topic's name, so an id
from another deployment is refused rather than read against the wrong log. Resolving either
into offsets needs the log, which `crm_events/kafka/position_log.py` reads.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from crm_events.core.position_log import Amended, Between, LogPoint, Ref, Registered
from crm_events.core.positions import MAX_OFFSET, Position
from crm_events.core.tokens import (
    TOKEN_TRAILING,
    TOKEN_UNKNOWN_TOPIC,
    TOPIC_HASH_BYTES,
    ResumeTokenError,
    TokenReader,
    checked_body,
    positions_read,
    sealed,
    topic_hash,
    varint,
)

TOKEN_VERSION_LOG = 2
TOKEN_VERSION_BETWEEN = 3
TOKEN_VERSION_AMENDED = 4
# Exceptions a version 4 id may carry: with offsets near 2^62 it stays under 256 characters.
AMENDED_MAX = 8
LOG_TAG_BYTES = 2
REF_POINT = 0
REF_REGISTERED = 1

TOKEN_OTHER_LOG = "resume token belongs to another deployment's positions log"


def resume_id_decode(
    token: str, topics: Iterable[str], *, log_topic: str
) -> dict[Position, int] | LogPoint | Between | Amended:
    """Decode any version for a stream serving `topics`: the positions a version 1 token
    spells out, the log point a version 2 id names, the catch-up a version 3 id is in, or the
    amended point of a version 4 one. Raises ResumeTokenError if unusable."""
    body = checked_body(token)
    if body[0] == TOKEN_VERSION_LOG:
        return _log_point_read(body, log_topic)
    if body[0] == TOKEN_VERSION_BETWEEN:
        return _between_read(body, topics, log_topic)
    if body[0] == TOKEN_VERSION_AMENDED:
        return _amended_read(body, topics, log_topic)
    return positions_read(body, topics)


def log_tag(log_topic: str) -> bytes:
    return hashlib.blake2b(log_topic.encode("utf-8"), digest_size=LOG_TAG_BYTES).digest()


def _point_bytes(point: LogPoint) -> bytes:
    if point.segment is None:
        return varint(point.batch) + varint(0)
    return varint(point.batch) + varint(point.segment + 1) + varint(point.offset or 0)


def log_token_encode(point: LogPoint, *, log_topic: str) -> str:
    """A version 2 id: a point in the positions log named `log_topic`."""
    return sealed(bytes([TOKEN_VERSION_LOG]) + log_tag(log_topic) + _point_bytes(point))


def _ref_bytes(ref: Ref) -> bytes:
    if isinstance(ref, LogPoint):
        return varint(REF_POINT) + _point_bytes(ref)
    return varint(REF_REGISTERED) + varint(ref.record)


def between_token_encode(at: Between, *, log_topic: str) -> str:
    """A version 3 id: where a stream caught up partition by partition stands."""
    body = bytes([TOKEN_VERSION_BETWEEN]) + log_tag(log_topic) + _ref_bytes(at.start) + _ref_bytes(at.target)
    body += topic_hash(at.topic) + varint(at.partition) + varint(at.position)
    return sealed(body)


def _point_read(reader: TokenReader) -> LogPoint:
    batch = reader.varint(maximum=MAX_OFFSET)
    segment = reader.varint(maximum=1 << 31)
    if segment == 0:
        return LogPoint(batch)
    return LogPoint(batch, segment - 1, reader.varint(maximum=MAX_OFFSET))


def _ref_read(reader: TokenReader) -> Ref:
    kind = reader.varint(maximum=REF_REGISTERED)
    if kind == REF_POINT:
        return _point_read(reader)
    return Registered(reader.varint(maximum=MAX_OFFSET))


def _tag_check(reader: TokenReader, log_topic: str) -> None:
    if reader.fixed(LOG_TAG_BYTES) != log_tag(log_topic):
        raise ResumeTokenError(TOKEN_OTHER_LOG)


def _log_point_read(body: bytes, log_topic: str) -> LogPoint:
    reader = TokenReader(body[1:])
    _tag_check(reader, log_topic)
    point = _point_read(reader)
    if reader.index != len(reader.data):
        raise ResumeTokenError(TOKEN_TRAILING)
    return point


def _between_read(body: bytes, topics: Iterable[str], log_topic: str) -> Between:
    reader = TokenReader(body[1:])
    _tag_check(reader, log_topic)
    start, target = _ref_read(reader), _ref_read(reader)
    topic = {topic_hash(name): name for name in topics}.get(reader.fixed(TOPIC_HASH_BYTES))
    if topic is None:
        raise ResumeTokenError(TOKEN_UNKNOWN_TOPIC)
    partition, position = reader.varint(maximum=1 << 31), reader.varint(maximum=MAX_OFFSET)
    if reader.index != len(reader.data):
        raise ResumeTokenError(TOKEN_TRAILING)
    return Between(start, target, topic, partition, position)


def amended_token_encode(amended: Amended, *, log_topic: str) -> str:
    """A version 4 id: a point, and the few partitions where the stream stands elsewhere."""
    body = bytes([TOKEN_VERSION_AMENDED]) + log_tag(log_topic) + _point_bytes(amended.point)
    body += varint(len(amended.exceptions))
    for (topic, partition), offset in amended.exceptions:
        body += topic_hash(topic) + varint(partition) + varint(0 if offset is None else offset + 1)
    return sealed(body)


def _amended_read(body: bytes, topics: Iterable[str], log_topic: str) -> Amended:
    reader = TokenReader(body[1:])
    _tag_check(reader, log_topic)
    point = _point_read(reader)
    names = {topic_hash(name): name for name in topics}
    exceptions = []
    for _ in range(reader.varint(maximum=AMENDED_MAX)):
        topic = names.get(reader.fixed(TOPIC_HASH_BYTES))
        if topic is None:
            raise ResumeTokenError(TOKEN_UNKNOWN_TOPIC)
        partition, stored = reader.varint(maximum=1 << 31), reader.varint(maximum=MAX_OFFSET)
        exceptions.append(((topic, partition), None if stored == 0 else stored - 1))
    if reader.index != len(reader.data):
        raise ResumeTokenError(TOKEN_TRAILING)
    return Amended(point, tuple(exceptions))
