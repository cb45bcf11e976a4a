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

import asyncio
from collections.abc import AsyncIterator, Coroutine
from typing import Any

from twisted.internet.interfaces import IPushProducer
from zope.interface import implementer

from crm_events import metrics
from crm_events.core.flag import Flag
from crm_events.server.direct_send import chunk_send_now, pause_threshold_set, send_buffer_set, tcp_transport

_WRITES_SOCKET = metrics.STREAM_WRITES.labels(path="socket")
_WRITES_TWISTED = metrics.STREAM_WRITES.labels(path="twisted")


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

    # --- StreamTransport --------------------------------------------------------------

    def write(self, chunk: bytes) -> None:
        if self._gone or self._client_left():
            return  # Daphne is telling the application so
        if not self._producing:
            self._start()
        transport = tcp_transport(self._protocol) if self._direct else None
        if transport is not None and chunk_send_now(self._protocol, transport, chunk):
            _WRITES_SOCKET.inc()
            return
        self._protocol.handle_reply({"type": "http.response.body", "body": chunk, "more_body": True})
        _WRITES_TWISTED.inc()

    def has_room(self) -> bool:
        return self._room.is_set()

    async def writable(self, timeout: float) -> bool:
        try:
            async with asyncio.timeout(timeout):
                await self._room.wait()
            return True
        except TimeoutError:
            return False

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
        send_buffer_set(self._protocol, self._send_buffer)
        self._protocol.registerProducer(self, True)

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
