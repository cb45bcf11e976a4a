"""No HTTP 426, ever: HTTP/1.0, HTTP/1.1, `Upgrade: h2c` and HTTP/2 over TLS against a real Daphne.

The old service answered some clients `426 Upgrade Required`. Here every one of them
gets `200` and a streaming `text/event-stream` body with the `connected` frame; over
TLS, curl negotiates HTTP/2 by ALPN and live events arrive on that stream.
"""

from __future__ import annotations

import asyncio
import datetime
import http.client
import json
import selectors
import ssl
import subprocess
import sys
import time
from ipaddress import ip_address
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from scripts.servers import free_port
from tests.integration.conftest import json_values, produce
from tests.support.processes import ServiceProcess, wait_until
from tests.support.sse_client import SseConnection, SseParser

H2C_UPGRADE = {
    "Connection": "Upgrade, HTTP2-Settings",
    "Upgrade": "h2c",
    "HTTP2-Settings": "AAMAAABkAARAAAAAAAIAAAAA",
}


async def raw_exchange(port: int, request: bytes, wanted: bytes, timeout: float = 10) -> bytes:
    """Send a hand-written request; read until `wanted` shows up in the response."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    received = b""
    try:
        writer.write(request)
        await writer.drain()
        async with asyncio.timeout(timeout):
            while wanted not in received:
                chunk = await reader.read(65536)
                if not chunk:
                    break
                received += chunk
    finally:
        writer.close()
    return received


def connected_in(body: bytes) -> bool:
    parser = SseParser()
    parser.feed(body)
    return any(event.data and event.json().get("kind") == "connected" for event in parser.events)


async def test_http_1_1_gets_a_chunked_stream(stack):
    _, port = stack.daphne()
    connection = await SseConnection.open("127.0.0.1", port, "/crm-events")
    try:
        await connection.events_until(lambda events: len(events) >= 2, timeout=15)
        assert connection.status == 200
        assert connection.headers["content-type"] == "text/event-stream"
        assert connection.headers["transfer-encoding"] == "chunked"
        assert connected_in(connection.raw_body)
    finally:
        connection.close()


async def test_http_1_0_gets_a_streaming_body_until_close(stack):
    _, port = stack.daphne()
    request = f"GET /crm-events HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nAccept: text/event-stream\r\n\r\n"
    received = await raw_exchange(port, request.encode(), b'"kind":"connected"')
    head, _, body = received.partition(b"\r\n\r\n")
    status_line, *headers = head.decode("latin-1").split("\r\n")
    assert status_line == "HTTP/1.0 200 OK"
    lowered = [line.lower() for line in headers]
    assert "content-type: text/event-stream" in lowered
    assert not any(line.startswith("transfer-encoding") for line in lowered)  # 1.0 knows no chunks
    assert connected_in(body)


async def test_h2c_upgrade_request_gets_a_normal_stream_not_426(stack):
    _, port = stack.daphne()
    connection = await SseConnection.open("127.0.0.1", port, "/crm-events", headers=H2C_UPGRADE)
    try:
        await connection.events_until(lambda events: len(events) >= 2, timeout=15)
        assert connection.status == 200
        assert connection.headers["content-type"] == "text/event-stream"
        assert connected_in(connection.raw_body)
    finally:
        connection.close()


def test_curl_http2_prior_upgrade_on_plain_http_falls_back_to_1_1(stack):
    """`curl --http2 http://` sends `Upgrade: h2c`; Daphne keeps HTTP/1.1 and streams."""
    _, port = stack.daphne()
    result = subprocess.run(
        ["curl", "-sS", "-N", "--http2", "--max-time", "3", "-w", "\\n%{http_code} %{http_version}\\n",
         f"http://127.0.0.1:{port}/crm-events"],
        capture_output=True, timeout=30,
    )
    assert result.returncode == 28, result.stderr  # stopped by --max-time: the stream stayed open
    assert connected_in(result.stdout)
    assert result.stdout.decode().rstrip().endswith("200 1.1")


# --- HTTP/2 over TLS ---------------------------------------------------------------------------


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A throwaway certificate for 127.0.0.1 and localhost, and its key."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "aetherlink-test")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ))
    return cert_path, key_path


def https_status_or_none(port: int, path: str) -> int | None:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    connection = http.client.HTTPSConnection("127.0.0.1", port, timeout=2, context=context)
    try:
        connection.request("GET", path)
        return connection.getresponse().status
    except OSError:
        return None
    finally:
        connection.close()


@pytest.fixture
def tls_daphne(stack, tmp_path) -> int:
    cert, key = self_signed(tmp_path)
    port = free_port()
    endpoint = f"ssl:port={port}:interface=127.0.0.1:privateKey={key}:certKey={cert}"
    process = ServiceProcess(
        "daphne-tls", [sys.executable, "-m", "crm_events.server", "-e", endpoint],
        stack.env, tmp_path,
    )
    stack.processes.append(process)
    wait_until(lambda: https_status_or_none(port, "/healthz") == 200 or not process.is_running(),
               timeout=60, what="TLS Daphne to answer /healthz")
    assert process.is_running(), process.log_text()
    return port


def test_curl_negotiates_http2_over_tls(tls_daphne):
    result = subprocess.run(
        ["curl", "-sS", "-k", "--http2", "-w", "\\n%{http_version}", f"https://127.0.0.1:{tls_daphne}/healthz"],
        capture_output=True, text=True, timeout=30,
    )
    assert result.returncode == 0, result.stderr
    body, version = result.stdout.rsplit("\n", 1)
    assert (json.loads(body), version) == ({"ok": True}, "2")


class CurlStream:
    """`curl --http2 -N` on the SSE endpoint, read line by line with deadlines."""

    def __init__(self, url: str) -> None:
        self.process = subprocess.Popen(
            ["curl", "-sS", "-k", "-N", "--http2", "-D", "-", url],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
        self.selector = selectors.DefaultSelector()
        self.selector.register(self.process.stdout, selectors.EVENT_READ)
        self.parser = SseParser()
        self.head = b""
        self._buffer = b""

    def read_until(self, done, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not done(self):
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not self.selector.select(remaining):
                raise AssertionError(f"curl stream: condition not met in {timeout}s; head={self.head!r}")
            chunk = self.process.stdout.read1(65536)
            if not chunk:
                raise AssertionError(f"curl ended: {self.process.stderr.read()!r}")
            self._feed(chunk)

    def _feed(self, chunk: bytes) -> None:
        if b"\r\n\r\n" not in self.head:
            self._buffer += chunk
            if b"\r\n\r\n" not in self._buffer:
                return
            self.head, _, chunk = self._buffer.partition(b"\r\n\r\n")
            self.head += b"\r\n\r\n"
        self.parser.feed(chunk)

    def close(self) -> None:
        self.process.terminate()
        self.process.wait(10)
        self.selector.close()


async def test_sse_stream_over_http2_with_tls_delivers_live_events(stack, kafka, topic, tls_daphne):
    stack.consumer()
    wait_until(lambda: json_status(tls_daphne) == 200, timeout=60, what="/readyz over TLS")
    stream = CurlStream(f"https://127.0.0.1:{tls_daphne}/crm-events")
    try:
        stream.read_until(lambda s: connected_in_events(s.parser), timeout=20)
        status_line = stream.head.split(b"\r\n", 1)[0]
        assert status_line.strip() == b"HTTP/2 200"
        assert b"content-type: text/event-stream" in stream.head.lower()
        await produce(kafka.bootstrap, topic, json_values(5), partitions=[0] * 5)
        stream.read_until(lambda s: len(seqs(s.parser)) >= 5, timeout=30)
        assert seqs(stream.parser) == [0, 1, 2, 3, 4]
    finally:
        stream.close()


def json_status(port: int) -> int | None:
    return https_status_or_none(port, "/readyz")


def connected_in_events(parser: SseParser) -> bool:
    return any(event.data and event.json().get("kind") == "connected" for event in parser.events)


def seqs(parser: SseParser) -> list[int]:
    values = [event.json().get("value") for event in parser.events if event.data]
    return [value["seq"] for value in values if isinstance(value, dict) and "seq" in value]
