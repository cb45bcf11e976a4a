"""Is a Kafka broker ready? A metadata request in the Kafka wire protocol itself (stdlib only)."""

from __future__ import annotations

import base64
import logging
import socket
import struct
import uuid

from scripts.servers.base import LOOPBACK

logger = logging.getLogger(__name__)


_CLIENT_ID = b"aetherlink-servers"
# Metadata request v4 (api key 3, correlation id 1): an empty topic list (we only need the
# brokers and the controller) and allow_auto_topic_creation=false.
_METADATA_BODY = struct.pack(">hhih", 3, 4, 1, len(_CLIENT_ID)) + _CLIENT_ID + struct.pack(">i?", 0, False)
_METADATA_REQUEST = struct.pack(">i", len(_METADATA_BODY)) + _METADATA_BODY


def kafka_metadata_ok(port: int, timeout: float = 2.0, *, host: str = LOOPBACK) -> bool:
    """True once a Metadata request to host:port lists a live broker and a controller."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(_METADATA_REQUEST)
            (size,) = struct.unpack(">i", _recv_exact(sock, 4))
            return _metadata_ready(_recv_exact(sock, size))
    except (OSError, struct.error):
        return False


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    data = bytearray()
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError("broker closed the connection")
        data += chunk
    return bytes(data)


def _metadata_ready(body: bytes) -> bool:
    """Read a Metadata v4 response as far as the broker count and the controller id."""
    count: int = struct.unpack_from(">i", body, 8)[0]  # after correlation id and throttle time
    offset = 12
    for _ in range(count):
        offset = _skip_string(body, offset + 4)  # node id, host
        offset = _skip_string(body, offset + 4)  # port, rack (nullable)
    offset = _skip_string(body, offset)  # cluster id (nullable)
    controller_id: int = struct.unpack_from(">i", body, offset)[0]
    return count > 0 and controller_id >= 0


def _skip_string(body: bytes, offset: int) -> int:
    length: int = struct.unpack_from(">h", body, offset)[0]
    return offset + 2 + max(length, 0)  # -1 is a null string


def kafka_cluster_id() -> str:
    """A Kafka Uuid string like `StorageTool random-uuid` prints, without starting a JVM for it."""
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not text.startswith("-"):  # Kafka avoids these too: they read as a CLI flag
            return text


