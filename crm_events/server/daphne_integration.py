"""What Daphne does not do for long-lived streams, added when we run under it.

1. Backpressure. Daphne writes every body chunk straight into Twisted's transport
   buffer, which grows without bound for a client that stops reading. We put a
   callable in each HTTP scope's extensions, `aetherlink.write_buffer`, returning
   the bytes still unsent on that connection, so a stream can stop writing to a
   stalled client (and send it away to resume) instead of growing the server.
2. Direct writes. `aetherlink.body_write` writes a body chunk into the connection
   at once, with no `await`: what an ASGI `http.response.body` send does under
   Daphne, minus the trip through a task per client. The fan-out hub writes each
   event batch to every client that has room this way, so an event costs one
   buffer append per client instead of one task wake-up per client.
   `aetherlink.send_buffer` sets the socket's kernel send buffer, which Linux
   otherwise grows to several MiB for a client that stops reading.
3. Graceful stop. On SIGTERM Daphne cancels every application at once, so no
   stream could tell its client where to resume. We take SIGTERM first: close the
   streams (each sends its resume id), give them `shutdown_grace` seconds, then let
   Daphne stop as before.
4. Garbage collection. A process holding thousands of streams holds many objects
   for each; with the interpreter's defaults it ran a full collection every few
   seconds under load, each pausing every stream for 200-250 ms (measured by the
   benchmark at 1,000 clients). We freeze what start-up created (it lives as long
   as the process) and collect the young generation less often, so fewer objects
   live long enough to make full collections due.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import socket
import sys
from collections.abc import Callable
from typing import Any

from twisted.internet import tcp

logger = logging.getLogger(__name__)

WRITE_BUFFER_EXTENSION = "aetherlink.write_buffer"
BODY_WRITE_EXTENSION = "aetherlink.body_write"
SEND_BUFFER_EXTENSION = "aetherlink.send_buffer"
# Allocations between young collections (the interpreter's default is 700): per-event
# objects mostly die before a collection sees them, instead of being promoted.
GC_YOUNG_THRESHOLD = 50_000


def pending_bytes(transport: Any) -> int:
    """Unsent bytes in a Twisted TCP transport (and a TLS wrapper's own buffer, if any)."""
    if type(transport) is tcp.Server:  # the common case, asked per client per batch
        return len(transport.dataBuffer) - transport.offset + transport._tempDataLen
    total = 0
    while transport is not None:
        data_buffer = getattr(transport, "dataBuffer", b"")
        total += len(data_buffer) - getattr(transport, "offset", 0)
        total += getattr(transport, "_tempDataLen", 0)
        transport = getattr(transport, "transport", None)
    return total


def send_buffer_set(transport: Any, size: int) -> None:
    """Set SO_SNDBUF on the TCP socket under `transport` (through a TLS wrapper, if any)."""
    while transport is not None:
        sock = getattr(transport, "socket", None)
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, size)
            return
        transport = getattr(transport, "transport", None)


def body_write(server: Any, protocol: Any, body: bytes) -> None:
    """Write a response body chunk now, as Daphne's own `handle_reply` would (more to come)."""
    connection = server.connections.get(protocol)
    if connection is None or connection.get("disconnected"):
        return  # the client left; Daphne is telling the application so
    if not chunk_send_now(protocol, body):
        protocol.handle_reply({"type": "http.response.body", "body": body, "more_body": True})


def chunk_send_now(protocol: Any, body: bytes) -> bool:
    """Send one chunk of a chunked HTTP/1.1 response straight into its TCP socket.

    Twisted would queue it, register the socket with the event loop for writing, send
    on the next pass and unregister: two epoll changes and a callback per write, which
    the benchmark measured at about half of the cost of a delivery. When nothing is
    queued ahead of it, we send at once, and hand Twisted only what the kernel did not
    take, so the order of bytes never changes. Anything else (TLS, HTTP/2, HTTP/1.0,
    headers not yet out, a closing connection) returns False and takes Twisted's path.
    """
    transport = getattr(getattr(protocol, "channel", None), "transport", None)
    if not (
        isinstance(transport, tcp.Server)
        and protocol.startedWriting and protocol.chunked and not protocol.finished
        and transport.connected and not transport.disconnecting and not transport._writeDisconnected
        and pending_bytes(transport) == 0
    ):
        return False
    data = b"%x\r\n%s\r\n" % (len(body), body)
    try:
        sent = transport.socket.send(data)
    except BlockingIOError:
        sent = 0
    except OSError:
        return False  # Twisted's own write finds the error and closes the connection its way
    protocol.sentLength += len(body)
    if sent < len(data):
        transport.write(data[sent:])
    return True


def _with_stream_extensions(create_application: Callable[..., Any]) -> Callable[..., Any]:
    def create(server: Any, protocol: Any, scope: dict[str, Any]) -> Any:
        channel = getattr(protocol, "channel", None)
        transport = getattr(channel, "transport", None)
        if scope.get("type") == "http" and transport is not None:
            extensions = scope.setdefault("extensions", {})
            extensions[WRITE_BUFFER_EXTENSION] = lambda: pending_bytes(transport)
            extensions[BODY_WRITE_EXTENSION] = lambda body: body_write(server, protocol, body)
            extensions[SEND_BUFFER_EXTENSION] = lambda size: send_buffer_set(transport, size)
        return create_application(server, protocol, scope)

    return create


def _graceful_sigterm(grace: float) -> None:
    from twisted.internet import reactor

    def on_sigterm(signum: int, frame: Any) -> None:
        logger.info("SIGTERM: closing streams with their resume ids (up to %.1fs)", grace)
        loop = asyncio.get_event_loop()
        loop.call_soon_threadsafe(lambda: loop.create_task(_close_then_stop(reactor, grace)))

    reactor.callWhenRunning(signal.signal, signal.SIGTERM, on_sigterm)


async def _close_then_stop(reactor: Any, grace: float) -> None:
    # Whatever goes wrong on the way (seen: a broken import), SIGTERM must stop the process.
    try:
        from crm_events.fanout.hub import hubs_close

        await hubs_close(grace)
    finally:
        reactor.stop()


def gc_tune() -> None:
    """Freeze start-up's objects out of every later collection; collect young ones less often."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, middle, old)


def daphne_integrate(*, shutdown_grace: float) -> None:
    """Install these additions when this process is a Daphne server; else do nothing."""
    daphne_server = sys.modules.get("daphne.server")
    if daphne_server is None:
        return
    server_class = daphne_server.Server
    if not getattr(server_class.create_application, "_aetherlink", False):
        server_class.create_application = _with_stream_extensions(server_class.create_application)
        server_class.create_application._aetherlink = True
    _graceful_sigterm(shutdown_grace)
    gc_tune()
