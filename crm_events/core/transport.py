"""The one interface through which a stream's bytes reach its connection.

A stream (its session, and the hub writing live events to it) writes through a
`StreamTransport` and never learns which server carries it. `crm_events.server`
builds them: one over Daphne's connection (direct socket writes, Twisted's
producer flow control) and one for any other ASGI server (the chunks become the
response body).
"""

from __future__ import annotations

from typing import Protocol


class StreamTransport(Protocol):
    def write(self, chunk: bytes) -> None:
        """Send `chunk` after everything written before; never blocks, never awaits."""

    def has_room(self) -> bool:
        """Whether the connection can take more now (its unsent bytes are under the limit)."""

    async def writable(self, timeout: float) -> bool:
        """Wait until there is room: True, or False if there was none within `timeout`."""

    def close(self) -> None:
        """The stream writes no more (the response then ends as the server ends it)."""
