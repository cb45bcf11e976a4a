"""Resume ids: where a stream stands, sent as the `id:` of every frame; and what every
version of them shares (varints, the checksum, base64url, the errors).

Versions 2 and 3 name places in the positions log (`log_tokens.py`): the ids streams get.
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

from crm_events.core.positions import MAX_OFFSET, Position

TOKEN_VERSION = 1
# Version 2 (a log point), 3 (a catch-up between two log references), 4 (a point amended in a
# few partitions): log_tokens.py.
TOKEN_VERSIONS = frozenset({1, 2, 3, 4})
TOPIC_HASH_BYTES = 4
CHECKSUM_BYTES = 3
# Version 1 grows with the partitions: 2,000 partitions at offsets near 2^62 stay below this.
MAX_TOKEN_CHARS = 65536


TOKEN_NOT_BASE64 = "resume token is not valid base64url"
TOKEN_TOO_LONG = "resume token is too long"
TOKEN_TRUNCATED = "resume token is truncated"
TOKEN_CHECKSUM = "resume token failed its checksum (corrupted or altered)"
TOKEN_VERSION_UNKNOWN = (
    "resume token version {version} is not supported (this server speaks versions 1 to 4)"
)
TOKEN_TRAILING = "resume token has trailing bytes"
TOKEN_UNKNOWN_TOPIC = "resume token names a topic this stream does not serve"
TOKEN_BAD_NUMBER = "resume token holds an out-of-range number"


class ResumeTokenError(ValueError):
    """The token cannot be used; the message says why and is safe to show the client."""


def topic_hash(topic: str) -> bytes:
    return hashlib.blake2b(topic.encode("utf-8"), digest_size=TOPIC_HASH_BYTES).digest()


def checksum(body: bytes) -> bytes:
    return hashlib.blake2b(body, digest_size=CHECKSUM_BYTES).digest()


def varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def sealed(body: bytes) -> str:
    body += checksum(body)
    return base64.urlsafe_b64encode(body).rstrip(b"=").decode("ascii")


def token_encode(positions: Mapping[Position, int]) -> str:
    """Encode next offsets by (topic, partition) into a token."""
    by_topic: dict[str, list[tuple[int, int]]] = {}
    for (topic, partition), offset in positions.items():
        by_topic.setdefault(topic, []).append((partition, offset))
    body = bytearray([TOKEN_VERSION])
    body += varint(len(by_topic))
    for topic in sorted(by_topic):
        body += topic_hash(topic)
        pairs = sorted(by_topic[topic])
        body += varint(len(pairs))
        for partition, offset in pairs:
            body += varint(partition) + varint(offset)
    return sealed(bytes(body))


class TokenReader:
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


def token_bytes(token: str) -> bytes:
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


def checked_body(token: str) -> bytes:
    """The token's bytes without its checksum, once the checksum holds."""
    raw = token_bytes(token)
    if len(raw) < 1 + CHECKSUM_BYTES:
        raise ResumeTokenError(TOKEN_TRUNCATED)
    if raw[0] not in TOKEN_VERSIONS:
        raise ResumeTokenError(TOKEN_VERSION_UNKNOWN.format(version=raw[0]))
    body, sent = raw[:-CHECKSUM_BYTES], raw[-CHECKSUM_BYTES:]
    if checksum(body) != sent:
        raise ResumeTokenError(TOKEN_CHECKSUM)
    return body


def token_decode(token: str, topics: Iterable[str]) -> dict[Position, int]:
    """Decode a version 1 token for a stream serving `topics`; raise ResumeTokenError if unusable."""
    body = checked_body(token)
    if body[0] != TOKEN_VERSION:
        raise ResumeTokenError(TOKEN_VERSION_UNKNOWN.format(version=body[0]))
    return positions_read(body, topics)


def positions_read(body: bytes, topics: Iterable[str]) -> dict[Position, int]:
    names = {topic_hash(topic): topic for topic in topics}
    reader = TokenReader(body[1:])
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


