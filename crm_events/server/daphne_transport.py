"""A stream's transport over a Daphne connection: written without an await, flow-controlled
by Twisted's producer API.

Each write goes into the connection at once (what an ASGI `http.response.body` send
does under Daphne, minus the trip through a task): straight into the socket when
nothing is queued ahead (`direct_send`), else through Daphne's own reply path. The
transport registers itself with the request as a streaming producer, so Twisted
tells it when the connection's buffer passes the stream's limit (`pauseProducing`)
and when it has drained (`resumeProducing`): that is what `has_room` and `writable`
report, with no polling and no reading of buffer sizes.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Coroutine
from typing import Any

from twisted.internet.interfaces import IPushProducer
from zope.interface import implementer

from crm_events import metrics
from crm_events.core.flag import Flag, set_within
from crm_events.server.direct_send import (
    chunk_send_now,
    chunked_started,
    pause_threshold_set,
    send_buffer_set,
    tcp_transport,
)

_WRITES = metrics.STREAM_WRITE_TALLY


@implementer(IPushProducer)
class DaphneTransport:
    def __init__(self, server: Any, protocol: Any, *, limit: int, send_buffer: int, direct: bool) -> None:
        self._server = server
        self._protocol = protocol
        self._limit = limit
        self._send_buffer = send_buffer
        self._direct = direct
        self._room = Flag(is_set=True)  # the session is its one waiter
        self._producing = False  # registered with the request
        self._gone = False
        # Read once (the first write), not per write: the connection's TCP transport and socket
        # for the direct sends, and whether its body is chunked (known once its headers are out).
        self._tcp: Any = None
        self._socket: socket.socket | None = None
        self._chunked: bool | None = None

    # --- StreamTransport --------------------------------------------------------------

    def write(self, chunk: bytes) -> None:
        if self._gone or self._client_left():
            return  # Daphne is telling the application so
        if not self._producing:
            self._start()
        if self._socket is not None and self._chunked_body() and chunk_send_now(
                self._protocol, self._tcp, self._socket, chunk):
            _WRITES.socket += 1
            return
        self._protocol.handle_reply({"type": "http.response.body", "body": chunk, "more_body": True})
        _WRITES.twisted += 1

    def has_room(self) -> bool:
        return self._room.is_set()

    async def writable(self, timeout: float) -> bool:
        return await set_within(self._room, timeout)

    def close(self) -> None:
        if not self._producing:
            return
        self._producing = False
        if not self._gone and self._protocol.channel is not None:  # a connection gone took it along
            self._protocol.unregisterProducer()

    async def body(self, session: Coroutine[Any, Any, None]) -> AsyncIterator[bytes]:
        """Everything is written into the connection directly: the body itself stays empty."""
        await session
        return
        yield  # an async generator that yields nothing

    # --- IPushProducer: Twisted's flow control ----------------------------------------

    def pauseProducing(self) -> None:
        self._room.clear()

    def resumeProducing(self) -> None:
        self._room.set()

    def stopProducing(self) -> None:
        self._gone = True
        self._room.set()  # nobody waits for a connection that is gone

    # --- internals --------------------------------------------------------------------

    def _start(self) -> None:
        """On the first write (the response's headers are out by then): register for flow
        control at the stream's own limit, and bound the socket's kernel buffer."""
        self._producing = True
        transport = tcp_transport(self._protocol)
        if transport is not None:
            pause_threshold_set(transport, self._limit)
            if self._direct:
                self._tcp, self._socket = transport, transport.getHandle()
        send_buffer_set(self._protocol, self._send_buffer)
        self._protocol.registerProducer(self, True)

    def _chunked_body(self) -> bool:
        if self._chunked is None:
            self._chunked = chunked_started(self._protocol)
        return bool(self._chunked)

    def _client_left(self) -> bool:
        connection = self._server.connections.get(self._protocol)
        return connection is None or bool(connection.get("disconnected"))


class DaphneTransportFactory:
    """Put in each HTTP scope by `AetherlinkServer`: a stream asks it for its transport."""

    def __init__(self, server: Any, protocol: Any, *, direct: bool) -> None:
        self.server, self.protocol, self.direct = server, protocol, direct

    def __call__(self, *, limit: int, send_buffer: int) -> DaphneTransport:
        return DaphneTransport(self.server, self.protocol, limit=limit, send_buffer=send_buffer,
                               direct=self.direct)
