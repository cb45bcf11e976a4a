"""A load-client process: holds thousands of SSE connections on one asyncio loop.

Run as `python -m bench.load_client`; the orchestrator (bench/fanout.py) drives it
with one JSON command per line on stdin and reads one JSON reply per line on
stdout. Connections speak HTTP/1.1 with chunked decoding, as browsers do, but
parse only what the benchmark needs: every benchmark event carries
`"bench":"<run>:<seq>:<sent_ns>"` in its value, so a client finds that marker,
records produce->receive latency and marks `seq` as seen (duplicates counted). An event
meant for one client only ends its marker in `:<owner>`; a client opened as number n (an
`open` whose path holds `{n}`) is owner `o<n>` (`o<n % owners>` when the `open` names `owners`:
clients sharing an owner, as a tenant's do; `{t}` in its path is then `n % owners`), and an
event for another owner is counted as
a wrong-client delivery, not as delivered. An `open` with `bearer` sends client n the token
`bearer[n % len(bearer)]` in `Authorization` (a web process with SSE_AUTH_MODE=jwt).

Commands (`op`): open, progress, stats, close, churn, drain_stalled, exit. Every command ends
within a deadline of its own (open and churn take `deadline`, seconds for the whole command),
so the orchestrator can bound its wait for each reply (bench/clients.py). A command that
fails answers `{"error": "..."}` instead of ending the process.
"""

from __future__ import annotations

import asyncio
import base64
import json
import socket
import ssl
import sys
import time
from array import array
from collections import Counter
from typing import Any

from bench.nofile import nofile_raise

MARK = b'"bench":"'
CONNECTED = b'"kind":"connected"'
# Centrifugo's uni SSE opens with its connect reply, `{"connect": {...}}` (bench/peer_centrifugo.py).
PEER_CONNECTED = b'{"connect":{'
RECONNECT = b'"kind":"reconnect"'
REASON = b'"reason":"'
CONNECT_TIMEOUT = 30.0  # TCP connect, response head and `connected` frame, together
CLOSE_TIMEOUT = 10.0  # for the connection_lost of a connection we closed ourselves
OPEN_TIMEOUT = 120.0  # default deadline of a whole open command
CHURN_TIMEOUT = 300.0  # default deadline of a whole churn command


class RunTally:
    """Everything the clients of this process received in one run (one produced batch)."""

    __slots__ = ("delivered", "duplicates", "latencies_us", "wrong_client")

    def __init__(self) -> None:
        self.delivered = 0
        self.duplicates = 0
        self.wrong_client = 0
        self.latencies_us = array("i")


class StreamClient(asyncio.Protocol):
    """One SSE connection: chunked decoding, frame splitting, marker parsing."""

    def __init__(self, worker: Worker, *, stall: bool, owner: bytes | None = None) -> None:
        self.worker = worker
        self.stall = stall
        self.owner = owner  # the events meant for this client alone carry it (bench/events.py)
        self.transport: asyncio.Transport | None = None
        self.connected = asyncio.get_running_loop().create_future()
        self.closed = asyncio.get_running_loop().create_future()
        self.raw = b""  # transport bytes not yet decoded (head, chunk framing)
        self.body = b""  # decoded body after the last complete frame
        self.head_done = False
        self.chunk_left = 0
        self.status = 0
        self.seen: dict[bytes, bytearray] = {}
        self.close_reason: str | None = None
        self.bytes_received = 0

    @property
    def connection(self) -> asyncio.Transport:
        """The transport, once connected (the callers only use it after `create_connection`)."""
        assert self.transport is not None
        return self.transport

    # --- asyncio.Protocol ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.connected.done():
            self.connected.set_exception(ConnectionError(f"closed before connected: {exc}"))
        if not self.closed.done():
            self.closed.set_result(None)

    def data_received(self, data: bytes) -> None:
        now_ns = time.time_ns()
        self.bytes_received += len(data)
        raw = self.raw + data if self.raw else data
        pos = 0
        if not self.head_done:
            end = raw.find(b"\r\n\r\n")
            if end < 0:
                self.raw = raw
                return
            self._head(raw[:end])
            pos = end + 4
        parts = []
        size = len(raw)
        while pos < size:
            if self.chunk_left:
                take = min(self.chunk_left, size - pos)
                parts.append(raw[pos : pos + take])
                pos += take
                self.chunk_left -= take
                continue
            end = raw.find(b"\r\n", pos)
            if end < 0:
                break
            line, pos = raw[pos:end], end + 2
            if line:  # an empty line is the CRLF closing the previous chunk
                self.chunk_left = int(line.split(b";")[0], 16)
                if self.chunk_left == 0:
                    break
        self.raw = raw[pos:] if pos < size else b""
        if parts:
            self._body(b"".join(parts), now_ns)

    # --- parsing ------------------------------------------------------------------------

    def _head(self, head: bytes) -> None:
        self.head_done = True
        self.status = int(head.split(b" ", 2)[1])
        if self.status != 200 and not self.connected.done():
            self.connected.set_exception(ConnectionError(f"HTTP {self.status}"))

    def _body(self, data: bytes, now_ns: int) -> None:
        buffer = self.body + data if self.body else data
        last = buffer.rfind(b"\n\n")
        if last < 0:
            self.body = buffer
            return
        frames, self.body = buffer[:last], buffer[last + 2 :]
        if not self.connected.done() and (CONNECTED in frames or PEER_CONNECTED in frames):
            self.connected.set_result(None)
            if self.stall and self.transport is not None:
                self.transport.pause_reading()
        if RECONNECT in frames:
            start = frames.index(REASON, frames.index(RECONNECT)) + len(REASON)
            self.close_reason = frames[start : frames.index(b'"', start)].decode()
        index = frames.find(MARK)
        while index >= 0:
            start = index + len(MARK)
            end = frames.index(b'"', start)
            run, seq, sent_ns, *owner = frames[start:end].split(b":")
            if owner and owner[0] != self.owner:
                self.worker.misdelivered(run)
            else:
                self.worker.record(self, run, int(seq), now_ns - int(sent_ns))
            index = frames.find(MARK, end)


class Worker:
    def __init__(self) -> None:
        self.clients: list[StreamClient] = []
        self.runs: dict[bytes, RunTally] = {}

    def tally(self, run: bytes) -> RunTally:
        tally = self.runs.get(run)
        if tally is None:
            tally = self.runs[run] = RunTally()
        return tally

    def misdelivered(self, run: bytes) -> None:
        self.tally(run).wrong_client += 1

    def record(self, client: StreamClient, run: bytes, seq: int, latency_ns: int) -> None:
        tally = self.tally(run)
        seen = client.seen.get(run)
        if seen is None:
            seen = client.seen[run] = bytearray(1024)
        if seq >= len(seen):
            seen.extend(bytes(seq + 1024 - len(seen)))
        if seen[seq]:
            tally.duplicates += 1
            return
        seen[seq] = 1
        tally.delivered += 1
        tally.latencies_us.append(min(latency_ns // 1000, 2**31 - 1))

    async def connect(
        self, host: str, port: int, path: str, *, stall: bool = False, rcvbuf: int | None = None,
        timeout: float = CONNECT_TIMEOUT, cafile: str | None = None, owner: bytes | None = None,
        bearer: str | None = None,
    ) -> StreamClient:
        """An open stream that has received its `connected` frame, within `timeout` seconds;
        over TLS (HTTP/1.1, the certificate checked against `cafile`) when `cafile` is given.

        TimeoutError names the step that did not finish: the TCP connection (a full accept queue),
        the response head, or the `connected` frame.
        """
        loop = asyncio.get_running_loop()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.setblocking(False)
        client = StreamClient(self, stall=stall, owner=owner)
        step = "TCP connection"
        try:
            async with asyncio.timeout(timeout):
                await loop.sock_connect(sock, (host, port))
                tls = _tls_context(cafile) if cafile else None
                await loop.create_connection(lambda: client, sock=sock, ssl=tls,
                                             server_hostname=host if tls else None)
                authorization = f"Authorization: Bearer {bearer}\r\n" if bearer else ""
                request = (f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nAccept: text/event-stream\r\n"
                           f"{authorization}\r\n")
                client.connection.write(request.encode())
                step = "response head"
                await client.connected
        except TimeoutError:
            self._discard(client, sock)
            step = "connected frame" if step == "response head" and client.head_done else step
            raise TimeoutError(f"{path}: no {step} within {timeout:.0f} s") from None
        except BaseException:
            self._discard(client, sock)
            raise
        return client

    @staticmethod
    def _discard(client: StreamClient, sock: socket.socket) -> None:
        if client.transport is not None:
            client.transport.abort()
        else:
            sock.close()

    # --- commands -----------------------------------------------------------------------

    async def op_open(self, cmd: dict[str, Any]) -> dict[str, Any]:
        """Open `count` streams; those not open by the command's deadline count as errors.

        A path holding `{n}` is numbered: the streams are clients `first` ... `first + count - 1`,
        each opened with `{n}` replaced by its number and owning the events of owner `o<n>`.
        """
        gate = asyncio.Semaphore(cmd.get("concurrency", 32))
        errors: Counter[str] = Counter()
        started = time.monotonic()
        deadline = started + cmd.get("deadline", OPEN_TIMEOUT)
        numbered = "{n}" in cmd["path"] or bool(cmd.get("owners"))
        owners = cmd.get("owners") or 0
        tokens = cmd.get("bearer") or []

        async def one(number: int) -> None:
            tenant = str(number % owners) if owners else ""
            path = cmd["path"].replace("{n}", str(number)).replace("{t}", tenant)
            owner = f"o{number % owners if owners else number}".encode() if numbered else None
            bearer = tokens[number % len(tokens)] if tokens else None
            async with gate:
                left = deadline - time.monotonic()
                if left <= 0:
                    errors["TimeoutError: not tried, the open command's deadline had passed"] += 1
                    return
                try:
                    client = await self.connect(
                        cmd["host"], cmd["port"], path,
                        stall=cmd.get("stall", False), rcvbuf=cmd.get("rcvbuf"),
                        timeout=min(CONNECT_TIMEOUT, left), cafile=cmd.get("cafile"), owner=owner,
                        bearer=bearer,
                    )
                    self.clients.append(client)
                except (OSError, TimeoutError) as error:
                    errors[_error_key(error)] += 1

        first = cmd.get("first", 0)
        await asyncio.gather(*(one(first + index) for index in range(cmd["count"])))
        return {"opened": cmd["count"] - sum(errors.values()), "errors": dict(errors),
                "seconds": round(time.monotonic() - started, 2), "open_total": len(self.clients)}

    def op_progress(self, cmd: dict[str, Any]) -> dict[str, Any]:
        tally = self.runs.get(cmd["run"].encode())
        return {"delivered": tally.delivered if tally else 0}

    def op_stats(self, cmd: dict[str, Any]) -> dict[str, Any]:
        tally = self.runs.pop(cmd["run"].encode(), None) or RunTally()
        for client in self.clients:
            client.seen.pop(cmd["run"].encode(), None)
        ended = Counter(
            client.close_reason or "closed" for client in self.clients
            if client.close_reason or client.closed.done()
        )
        return {
            "delivered": tally.delivered, "duplicates": tally.duplicates, "wrong_client": tally.wrong_client,
            "latencies_us": base64.b64encode(tally.latencies_us.tobytes()).decode("ascii"),
            "clients": len(self.clients), "ended": dict(ended),
        }

    async def op_close(self, cmd: dict[str, Any]) -> dict[str, Any]:
        count = len(self.clients)
        for client in self.clients:
            if client.transport is not None:
                client.transport.abort()
        waiting = [client.closed for client in self.clients if not client.closed.done()]
        if waiting:
            await asyncio.wait(waiting, timeout=CLOSE_TIMEOUT)
        unclosed = sum(not client.closed.done() for client in self.clients)
        self.clients.clear()
        return {"closed": count, "unclosed": unclosed}

    async def op_churn(self, cmd: dict[str, Any]) -> dict[str, Any]:
        """`cycles` times: connect, wait for the `connected` frame, close (FIN or RST, alternating).

        Cycles not started by the command's deadline count as failed.
        """
        gate = asyncio.Semaphore(cmd.get("concurrency", 50))
        errors: Counter[str] = Counter()
        started = time.monotonic()
        deadline = started + cmd.get("deadline", CHURN_TIMEOUT)

        async def cycle(number: int) -> None:
            async with gate:
                left = deadline - time.monotonic()
                if left <= 0:
                    errors["TimeoutError: not started, the churn command's deadline had passed"] += 1
                    return
                try:
                    client = await self.connect(
                        cmd["host"], cmd["port"], cmd["path"], timeout=min(CONNECT_TIMEOUT, left))
                except (OSError, TimeoutError) as error:
                    errors[_error_key(error)] += 1
                    return
                if number % 2:
                    client.connection.abort()
                else:
                    client.connection.close()
                done, _ = await asyncio.wait([client.closed], timeout=CLOSE_TIMEOUT)
                if not done:
                    client.connection.abort()
                    errors[f"TimeoutError: connection still open {CLOSE_TIMEOUT:g} s after closing it"] += 1

        await asyncio.gather(*(cycle(number) for number in range(cmd["cycles"])))
        return {"cycles": cmd["cycles"], "failed": sum(errors.values()), "errors": dict(errors),
                "seconds": round(time.monotonic() - started, 2)}

    async def op_drain_stalled(self, cmd: dict[str, Any]) -> dict[str, Any]:
        """Start reading the stalled clients; report how the server ended their streams."""
        stalled = [client for client in self.clients if client.stall]
        before = sum(client.bytes_received for client in stalled)
        for client in stalled:
            if client.transport is not None and not client.closed.done():
                client.transport.resume_reading()
        deadline = time.monotonic() + cmd.get("timeout", 10.0)
        while time.monotonic() < deadline and not all(c.close_reason for c in stalled):
            await asyncio.sleep(0.1)
        return {
            "stalled": len(stalled),
            "reasons": dict(Counter(client.close_reason or "none" for client in stalled)),
            "bytes_after_resume": sum(client.bytes_received for client in stalled) - before,
        }


_tls_contexts: dict[str, ssl.SSLContext] = {}


def _tls_context(cafile: str) -> ssl.SSLContext:
    """One client context per certificate (no ALPN: HTTP/1.1, as the streams are parsed here)."""
    if cafile not in _tls_contexts:
        _tls_contexts[cafile] = ssl.create_default_context(cafile=cafile)
    return _tls_contexts[cafile]


def _error_key(error: BaseException) -> str:
    return type(error).__name__ + ": " + str(error)[:80]


async def main() -> None:
    nofile_raise()
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 20)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    worker = Worker()
    while line := await reader.readline():
        cmd = json.loads(line)
        if cmd["op"] == "exit":
            break
        try:
            reply = getattr(worker, "op_" + cmd["op"])(cmd)
            if asyncio.iscoroutine(reply):
                reply = await reply
        except Exception as error:  # noqa: BLE001 - answered; the orchestrator stops the run
            reply = {"error": f"{cmd['op']}: {error!r}"}
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    asyncio.run(main())
