"""A minimal SSE client over a raw asyncio socket, for tests and the benchmark.

It speaks HTTP/1.1 itself (request line, headers, chunked decoding) so tests see
exactly the bytes Daphne sent, and can cut the connection at any byte.
"""

from __future__ import annotations

import asyncio
import json
import random
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class SseEvent:
    data: str
    event: str | None = None
    id: str | None = None
    retry: int | None = None

    def json(self) -> Any:
        return json.loads(self.data)


@dataclass
class SseParser:
    """Turns body bytes into events, following the WHATWG parsing rules we rely on."""

    events: list[SseEvent] = field(default_factory=list)
    comments: list[str] = field(default_factory=list)
    last_id: str | None = None  # what a browser would send as Last-Event-ID
    _buffer: bytes = b""
    _fields: dict[str, Any] = field(default_factory=dict)
    _data: list[str] = field(default_factory=list)

    def feed(self, chunk: bytes) -> list[SseEvent]:
        self._buffer += chunk
        new: list[SseEvent] = []
        while b"\n" in self._buffer:
            line, self._buffer = self._buffer.split(b"\n", 1)
            event = self._line(line.rstrip(b"\r").decode("utf-8"))
            if event is not None:
                new.append(event)
        self.events.extend(new)
        return new

    def _line(self, line: str) -> SseEvent | None:
        if line == "":
            return self._dispatch()
        if line.startswith(":"):
            self.comments.append(line[1:].strip())
            return None
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "data":
            self._data.append(value)
        elif name == "retry":
            self._fields["retry"] = int(value)
        elif name in ("event", "id"):
            self._fields[name] = value
        return None

    def _dispatch(self) -> SseEvent | None:
        # As in browsers, a block with an id but no data still moves the last event id.
        if "id" in self._fields:
            self.last_id = self._fields["id"]
        if not self._data and "retry" not in self._fields:
            self._fields.clear()
            return None
        event = SseEvent(data="\n".join(self._data), **self._fields)
        self._data, self._fields = [], {}
        return event


class SseConnection:
    """One open `GET` on an SSE endpoint."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.status = 0
        self.headers: dict[str, str] = {}
        self.parser = SseParser()
        self.raw_body = b""
        self.chunked = False
        self._chunk_left = 0
        self.ended = False

    @classmethod
    async def open(
        cls, host: str, port: int, path: str, headers: dict[str, str] | None = None,
        *, receive_buffer: int | None = None, tls: ssl.SSLContext | None = None,
    ) -> SseConnection:
        """Connect and send the GET; `receive_buffer` shrinks SO_RCVBUF to play a slow reader;
        `tls` speaks HTTP/1.1 over TLS (to a proxy such as nginx)."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if receive_buffer is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, (host, port))
        tls_options = {"ssl": tls, "server_hostname": host} if tls is not None else {}
        reader, writer = await asyncio.open_connection(sock=sock, **tls_options)
        lines = [f"GET {path} HTTP/1.1", "Accept: text/event-stream"]
        if "Host" not in (headers or {}):
            lines.insert(1, f"Host: {host}:{port}")
        lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        await writer.drain()
        connection = cls(reader, writer)
        await connection._read_head()
        return connection

    async def _read_head(self) -> None:
        head = await self.reader.readuntil(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        self.status = int(status_line.split()[1])
        for line in filter(None, header_lines):
            name, _, value = line.partition(":")
            self.headers[name.strip().lower()] = value.strip()
        self.chunked = self.headers.get("transfer-encoding", "").lower() == "chunked"

    async def read_raw(self) -> bytes:
        """The next body bytes as they arrive (b"" at the end), not yet parsed."""
        data = await (self._read_chunked() if self.chunked else self.reader.read(65536))
        if not data:
            self.ended = True
        return data

    def feed(self, data: bytes) -> list[SseEvent]:
        self.raw_body += data
        return self.parser.feed(data)

    async def read_some(self) -> list[SseEvent]:
        """Read what arrives next (at least one byte, or the end); return new events."""
        return self.feed(await self.read_raw())

    async def _read_chunked(self) -> bytes:
        if self._chunk_left == 0:
            size_line = await self.reader.readline()
            if not size_line:
                return b""
            size = int(size_line.split(b";")[0].strip() or b"0", 16)
            if size == 0:
                await self.reader.readline()
                return b""
            self._chunk_left = size
        data = await self.reader.read(self._chunk_left)
        self._chunk_left -= len(data)
        if self._chunk_left == 0 and data:
            await self.reader.readexactly(2)
        return data

    async def events_until(self, done, timeout: float) -> list[SseEvent]:
        """Read until `done(all_events_so_far)` is true; fail after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while not done(self.parser.events):
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self.ended:
                break
            try:
                await asyncio.wait_for(self.read_some(), remaining)
            except TimeoutError:
                break
        return self.parser.events

    def close(self) -> None:
        self.writer.close()

    def abort(self) -> None:
        """Cut the TCP connection abruptly (RST), as a crashed client or network would."""
        self.writer.transport.abort()


class ResumingClient:
    """Reconnects with its last id after every cut, as a browser does, to one of `ports`.

    `cuts` are byte counts: the n-th connection is cut abruptly after that many body
    bytes (mid-frame, usually); once they are used up the client stays connected.
    """

    def __init__(self, ports: list[int], path: str, *, cuts: list[int], seed: int = 1) -> None:
        self.ports = ports
        self.path = path
        self.cuts = list(cuts)
        self.rng = random.Random(seed)
        self.last_id: str | None = None
        self.events: list[SseEvent] = []
        self.received: list[dict[str, Any]] = []  # domain event payloads, in arrival order
        self.connections = 0

    async def run(self, done: Callable[[ResumingClient], bool], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not done(self) and time.monotonic() < deadline:
            headers = {"Last-Event-ID": self.last_id} if self.last_id else {}
            port = self.rng.choice(self.ports)
            connection = await SseConnection.open("127.0.0.1", port, self.path, headers)
            self.connections += 1
            assert connection.status == 200, connection.status
            await self._read(connection, self.cuts.pop(0) if self.cuts else None, done, deadline)

    async def _read(self, connection: SseConnection, cut: int | None, done, deadline: float) -> None:
        try:
            while not done(self) and not connection.ended:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return
                try:
                    data = await asyncio.wait_for(connection.read_raw(), remaining)
                except TimeoutError:
                    return
                if cut is not None and len(connection.raw_body) + len(data) >= cut:
                    self._take(connection, data[: cut - len(connection.raw_body)])
                    return
                self._take(connection, data)
        finally:
            connection.abort()

    def _take(self, connection: SseConnection, data: bytes) -> None:
        for event in connection.feed(data):
            self.events.append(event)
            if event.data and event.event is None and '"kind":"domain_event"' in event.data:
                self.received.append(event.json())
        self.last_id = connection.parser.last_id or self.last_id
