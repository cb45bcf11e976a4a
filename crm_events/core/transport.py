"""The one interface through which a stream's bytes reach its connection.

A stream (its session, and the hub writing live events to it) writes through a
`StreamTransport` and never learns which server carries it. A server that can
write into the connection itself hands a `TransportFactory` up in the request's
scope, under `TRANSPORT_EXTENSION` (`crm_events.server` does, over Daphne's
connection: direct socket writes, Twisted's producer flow control); without one,
`crm_events.streams.body_transport` makes the chunks the response body.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Coroutine
from typing import Any, Protocol

# The key of the ASGI scope's `extensions` under which a server offers its `TransportFactory`.
TRANSPORT_EXTENSION = "aetherlink.stream_transport"


class StreamTransport(Protocol):
    def write(self, chunk: bytes) -> None:
        """Send `chunk` after everything written before; never blocks, never awaits."""

    def has_room(self) -> bool:
        """Whether the connection can take more now (its unsent bytes are under the limit)."""

    async def writable(self, timeout: float) -> bool:
        """Wait until there is room: True, or False if there was none within `timeout`."""

    def close(self) -> None:
        """The stream writes no more (the response then ends as the server ends it)."""


class BodyTransport(StreamTransport, Protocol):
    def body(self, session: Coroutine[Any, Any, None]) -> AsyncIterator[bytes]:
        """The response body: runs `session` and yields what it writes."""


class TransportFactory(Protocol):
    def __call__(self, *, limit: int, send_buffer: int) -> BodyTransport: ...
