"""Sending a chunk straight into the socket: the one place that reads Twisted's internals.

Twisted would queue each write, register the socket with the event loop for writing,
send on the next pass and unregister: two epoll changes and a callback per write,
a large share of the cost of a delivery (see the benchmark page). When nothing
is queued ahead of a chunk of a chunked HTTP/1.1 response over plain TCP, we send it
at once and hand Twisted only what the kernel did not take, so the order of bytes
never changes. Anything else (TLS, HTTP/2, HTTP/1.0, headers not yet out, a closing
connection, bytes still queued) takes Twisted's own path.

Whether Twisted still has what this relies on is checked at start-up against the
real classes (`direct_send_missing`): a release that renamed one of them turns the
fast path off, with a warning and `aetherlink_direct_send_enabled` at 0, instead of
failing inside the hub or quietly losing capacity.
"""

from __future__ import annotations

import logging
import socket
from typing import Any

from twisted.internet import abstract, tcp
from twisted.web import http

from crm_events import metrics

logger = logging.getLogger(__name__)

# What `chunk_send_now` reads: (the class, its attributes).
TRANSPORT_ATTRIBUTES = ("dataBuffer", "offset", "_tempDataLen", "_writeDisconnected", "connected",
                        "disconnecting", "getHandle", "write", "bufferSize")
REQUEST_ATTRIBUTES = ("startedWriting", "chunked", "finished", "sentLength", "registerProducer")
FAST_PATH_OFF = (
    "direct socket writes are off: this Twisted (%s) lacks %s; every write takes Twisted's own "
    "path, which is correct but slower (the benchmark page says by how much)"
)


def direct_send_missing(
    transport_class: type = tcp.Server, request_class: type = http.Request
) -> list[str]:
    """What the fast path needs that the installed Twisted lacks, checked on the real classes
    (and a real file descriptor object, for what Twisted sets per instance)."""
    descriptor = abstract.FileDescriptor()  # has no side effects: sets its buffers only
    per_instance = descriptor if issubclass(transport_class, abstract.FileDescriptor) else None
    missing = [f"{transport_class.__name__}.{name}" for name in TRANSPORT_ATTRIBUTES
               if not (hasattr(transport_class, name) or hasattr(per_instance, name))]
    missing += [f"{request_class.__name__}.{name}" for name in REQUEST_ATTRIBUTES
                if not hasattr(request_class, name)]
    return missing


def direct_send_enabled() -> bool:
    """Run the probe once at start; log and export the answer."""
    missing = direct_send_missing()
    if missing:
        import twisted

        logger.warning(FAST_PATH_OFF, twisted.__version__, ", ".join(missing))
    metrics.DIRECT_SEND_ENABLED.set(0 if missing else 1)
    return not missing


def tcp_transport(protocol: Any) -> tcp.Server | None:
    """The plain TCP transport under a request, or None (TLS, HTTP/2, gone)."""
    transport = getattr(getattr(protocol, "channel", None), "transport", None)
    return transport if isinstance(transport, tcp.Server) else None


def chunked_started(protocol: Any) -> bool | None:
    """Whether the response's body went out chunked: None while its headers are not out yet
    (then it is asked again), and once out the answer never changes."""
    if not protocol.startedWriting:
        return None
    return bool(protocol.chunked)


def chunk_send_now(protocol: Any, transport: tcp.Server, sock: socket.socket, body: bytes) -> bool:
    """Send one chunk of a chunked HTTP/1.1 response (`chunked_started` said so) into its socket
    (`transport.getHandle()`, read once per connection) now; False: not possible."""
    if (
        protocol.finished or not transport.connected or transport.disconnecting
        or transport._writeDisconnected
        or len(transport.dataBuffer) - transport.offset + transport._tempDataLen  # bytes still unsent
    ):
        return False
    data = b"%x\r\n%s\r\n" % (len(body), body)
    try:
        sent = sock.send(data)
    except BlockingIOError:
        sent = 0
    except OSError:
        return False  # Twisted's own write finds the error and closes the connection its way
    protocol.sentLength += len(body)
    if sent < len(data):
        transport.write(data[sent:])
    return True


def pause_threshold_set(transport: tcp.Server, size: int) -> None:
    """Twisted pauses a connection's producer once more than its `bufferSize` is unsent
    (64 KiB by default): make that the stream's own limit, `SSE_WRITE_BUFFER_BYTES`."""
    transport.bufferSize = size


def send_buffer_set(protocol: Any, size: int) -> None:
    """SO_SNDBUF of the request's socket, when it has one (Linux doubles the value)."""
    handle = getattr(getattr(getattr(protocol, "channel", None), "transport", None), "getHandle", None)
    sock = handle() if handle is not None else None
    if isinstance(sock, socket.socket):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, size)
