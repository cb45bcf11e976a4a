"""A stream's transport: the server's when it offers one, else as a plain ASGI response body.

`stream_transport(request)` is what a stream writes through. Under AetherLink's
Daphne server (`aetherlink-web`) the scope carries a factory for a transport that
writes into the connection itself (`crm_events/server/daphne_transport.py`, offered
under `core.transport.TRANSPORT_EXTENSION`); under any other ASGI server the chunks
become the body of the streaming response (`QueueTransport`), and the server's own
flow control applies. Both run the stream the same way: `transport.body(session)` is
the response body.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections import deque
from collections.abc import AsyncIterator, Coroutine
from typing import Any

from django.http import HttpRequest

from crm_events import metrics
from crm_events.core.flag import set_within
from crm_events.core.tasks import task_stop
from crm_events.core.transport import TRANSPORT_EXTENSION, BodyTransport, TransportFactory

logger = logging.getLogger(__name__)
_WRITES = metrics.STREAM_WRITE_TALLY

PLAIN_SERVER = (
    "this ASGI server gives streams no direct transport (served by plain `daphne`, say): streams "
    "work, written as response bodies, but without AetherLink's direct writes, socket flow control "
    "and goodbye frames on shutdown; run `aetherlink-web` for them"
)


class QueueTransport:
    """Chunks queued in memory and yielded as the response body (any ASGI server)."""

    def __init__(self, *, limit: int) -> None:
        self.limit = limit
        self._chunks: deque[bytes] = deque()
        self._size = 0
        self._ready = asyncio.Event()  # chunks to yield
        self._room = asyncio.Event()  # under the limit
        self._room.set()

    def write(self, chunk: bytes) -> None:
        _WRITES.body += 1
        self._chunks.append(chunk)
        self._size += len(chunk)
        self._ready.set()
        if self._size > self.limit:
            self._room.clear()

    def has_room(self) -> bool:
        return self._size <= self.limit

    async def writable(self, timeout: float) -> bool:
        return await set_within(self._room, timeout)

    def close(self) -> None:
        self._ready.set()

    async def body(self, session: Coroutine[Any, Any, None]) -> AsyncIterator[bytes]:
        running = asyncio.ensure_future(session)
        try:
            while self._chunks or not running.done():
                if not self._chunks:
                    self._ready.clear()
                    waiting = asyncio.ensure_future(self._ready.wait())
                    await asyncio.wait({running, waiting}, return_when=asyncio.FIRST_COMPLETED)
                    waiting.cancel()
                    continue
                chunk = self._chunks.popleft()
                self._size -= len(chunk)
                if self._size <= self.limit:
                    self._room.set()
                yield chunk
            running.result()  # the session's own failure, if any, is the response's
        finally:
            if not running.done():  # the client left mid-stream
                await task_stop(running)


@functools.cache
def _plain_server_noted() -> None:
    logger.warning(PLAIN_SERVER)  # once per process


def stream_transport(request: HttpRequest, *, limit: int, send_buffer: int) -> BodyTransport:
    """The transport for this stream request: Daphne's when the server provides one."""
    scope: dict[str, Any] = getattr(request, "scope", {})
    factory: TransportFactory | None = scope.get("extensions", {}).get(TRANSPORT_EXTENSION)
    if factory is not None:
        return factory(limit=limit, send_buffer=send_buffer)
    _plain_server_noted()
    return QueueTransport(limit=limit)
