"""An SSE client that behaves like a browser's EventSource behind a load balancer, for fault tests.

Unlike `ResumingClient` it never gives up: when a connection is refused, reset, ends, or goes
silent it waits the stream's `retry:` hint and reconnects with its last id, to any of the web
processes (as a balancer would send it to a live one). It records when each event first
arrived, so a test can tell what was lost, what came twice, and how long recovery took.
"""

from __future__ import annotations

import asyncio
import random
import ssl
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from tests.support.sse_client import SseConnection, SseEvent

Position = tuple[int, int]  # (partition, offset)

CONNECT_TIMEOUT = 10.0
DEFAULT_RETRY_MS = 3000  # what a browser waits when the server sent no `retry:`
HEARTBEAT = b": heartbeat\n"  # the comment line of the service's heartbeat frame


class BrowserClient:
    """Reads `/crm-events?{query}` until it has every position in `expected` (set by the test).

    `wants(record)` says which produced records the client's filter should let through.
    `cuts` are body byte counts at which its first connections are cut abruptly.
    `idle_timeout` is a watchdog: a connection that sends nothing (not even a heartbeat) for
    that long is dropped and counted in `stalls`, since a healthy server never goes silent.
    `tls` makes it an https client (of nginx, say). `host` is the address it connects to;
    `headers` go with every request (a `Host` of a virtual server, a session cookie).
    """

    def __init__(
        self, name: str, ports: list[int], query: str, wants: Callable[[Any], bool], *,
        cuts: list[int] | None = None, seed: int = 0, idle_timeout: float = 15.0,
        tls: ssl.SSLContext | None = None, host: str = "127.0.0.1", headers: dict[str, str] | None = None,
    ) -> None:
        self.name = name
        self.host = host
        self.headers = dict(headers or {})
        self.ports = ports
        self.path = "/crm-events?from=earliest" + (f"&{query}" if query else "")
        self.wants = wants
        self.cuts = list(cuts or [])
        self.rng = random.Random(seed)
        self.idle_timeout = idle_timeout
        self.tls = tls
        self.port = ports[seed % len(ports)]
        self.last_id: str | None = None
        self.retry_ms = DEFAULT_RETRY_MS
        self.received: list[dict[str, Any]] = []
        self.arrivals: dict[Position, float] = {}
        self.expected: set[Position] | None = None
        self.connections = 0
        self.connect_failures = 0
        self.stalls = 0
        self.statuses: Counter[int] = Counter()
        self.farewells: Counter[str] = Counter()
        self.heartbeats = 0
        self.silences: list[float] = []  # seconds between two reads (a reconnection's wait included)
        self._last_read = 0.0
        self._connection: SseConnection | None = None
        self._cut: int | None = None  # the planned cut of the current connection, until it is made

    @property
    def connected(self) -> bool:
        return self.last_id is not None

    @property
    def local_port(self) -> int | None:
        """The client's port of its current connection (None between connections)."""
        if self._connection is None:
            return None
        return int(self._connection.writer.get_extra_info("sockname")[1])

    @property
    def steady(self) -> bool:
        """Reading a stream, with no planned cut left (the current connection's included: its cut
        is taken from the list when it opens, and made later, maybe after a long catch-up)."""
        return not self.cuts and self._cut is None and self._connection is not None

    def drop(self) -> None:
        """Cut the current connection now (a network blip, a page reload)."""
        if self._connection is not None:
            self._connection.abort()

    def done(self) -> bool:
        return self.expected is not None and self.expected <= self.arrivals.keys()

    async def run(self, deadline: float) -> None:
        while not self.done() and time.monotonic() < deadline:
            connection = self._connection = await self._connect()
            if connection is not None:
                self._cut = self.cuts.pop(0) if self.cuts else None
                try:
                    await self._read(connection, self._cut, deadline)
                finally:
                    connection.abort()
                    self._connection, self._cut = None, None
            if not self.done():
                await asyncio.sleep(self.retry_ms / 1000)

    async def _connect(self) -> SseConnection | None:
        headers = {**self.headers, **({"Last-Event-ID": self.last_id} if self.last_id else {})}
        try:
            connection = await asyncio.wait_for(
                SseConnection.open(self.host, self.port, self.path, headers, tls=self.tls), CONNECT_TIMEOUT
            )
        except (OSError, asyncio.IncompleteReadError, TimeoutError, ValueError):
            self.connect_failures += 1
            self.port = self.rng.choice(self.ports)  # the balancer tries another web process
            return None
        self.connections += 1
        self.statuses[connection.status] += 1
        if connection.status != 200:
            connection.abort()
            return None
        return connection

    async def _read(self, connection: SseConnection, cut: int | None, deadline: float) -> None:
        while not self.done() and not connection.ended:
            timeout = min(self.idle_timeout, deadline - time.monotonic())
            if timeout <= 0:
                return
            try:
                data = await asyncio.wait_for(connection.read_raw(), timeout)
            except TimeoutError:
                self.stalls += time.monotonic() < deadline
                return
            except (OSError, asyncio.IncompleteReadError, ValueError):
                return  # reset by a dying server, say: reconnect
            if cut is not None and len(connection.raw_body) + len(data) >= cut:
                self._take(connection, data[: cut - len(connection.raw_body)])
                self._cut = None  # made: steady once reading again
                return
            self._take(connection, data)

    def _take(self, connection: SseConnection, data: bytes) -> None:
        now = time.monotonic()
        if self._last_read:
            self.silences.append(now - self._last_read)
        self._last_read = now
        self.heartbeats += data.count(HEARTBEAT)
        for event in connection.feed(data):
            self._event(event, now)
        self.last_id = connection.parser.last_id or self.last_id

    def _event(self, event: SseEvent, now: float) -> None:
        if event.retry is not None:
            self.retry_ms = event.retry
        if not event.data or event.event is not None:
            return
        payload = event.json()
        if payload.get("kind") == "domain_event":
            self.received.append(payload)
            self.arrivals.setdefault((payload["partition"], payload["offset"]), now)
        elif payload.get("kind") == "reconnect":
            self.farewells[payload.get("reason", "?")] += 1
