"""The web process's server, for real: AetherLink's Daphne writes streams straight into their
sockets (counted, not assumed); plain Daphne still serves them, and says once what it lacks;
Daphne's own refusals come in the API's JSON error shape; started with a low open-files limit,
it raises it to the hard limit and says so, and it listens with the configured backlog."""

from __future__ import annotations

import json
import re
import resource
import socket
import subprocess
import sys
from pathlib import Path

from crm_events.server.os_limits import NOFILE_RAISED
from crm_events.streams.body_transport import PLAIN_SERVER
from scripts.servers import free_port
from tests.integration.conftest import json_values, produce
from tests.support.processes import http_get
from tests.support.sse_client import SseConnection


def metric(port: int, name: str, **labels: str) -> float:
    text = http_get(port, "/metrics")[1].decode()
    label_text = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    match = re.search(rf"^{name}(?:\{{{re.escape(label_text)}\}})? (\S+)$", text, re.M)
    return float(match.group(1)) if match else 0.0


def domain(connection: SseConnection) -> list[dict]:
    return [e.json() for e in connection.parser.events if e.data and '"domain_event"' in e.data]


async def stream_six_events(kafka, topic: str, port: int) -> None:
    connection = await SseConnection.open("127.0.0.1", port, "/crm-events")
    await connection.events_until(lambda events: any('"connected"' in (e.data or "") for e in events),
                                  timeout=20)
    await produce(kafka.bootstrap, topic, json_values(6), partitions=[0, 1, 2] * 2)
    await connection.events_until(lambda _: len(domain(connection)) >= 6, timeout=20)
    connection.close()
    assert sorted(e["value"]["seq"] for e in domain(connection)) == list(range(6))


async def test_aetherlink_web_writes_events_straight_into_the_socket(stack, kafka, topic):
    stack.consumer()
    web, port = stack.daphne()
    stack.wait_ready(port)
    assert metric(port, "aetherlink_direct_send_enabled") == 1
    before = metric(port, "aetherlink_sse_writes_total", path="socket")
    await stream_six_events(kafka, topic, port)
    assert metric(port, "aetherlink_sse_writes_total", path="socket") > before, "the fast path is in use"
    assert PLAIN_SERVER not in web.log_text()


async def test_plain_daphne_still_serves_streams_and_says_once_what_it_lacks(stack, kafka, topic):
    stack.consumer()
    web, port = stack.daphne(plain=True)
    stack.wait_ready(port)
    await stream_six_events(kafka, topic, port)
    await stream_six_events(kafka, topic, port)
    assert metric(port, "aetherlink_sse_writes_total", path="body") > 0
    assert metric(port, "aetherlink_sse_writes_total", path="socket") == 0
    assert web.log_text().count(PLAIN_SERVER) == 1


def chunks(reply) -> bytes:
    """A chunked HTTP/1.1 body, read to its last chunk."""
    body = b""
    while size := int(reply.readline().split(b";")[0], 16):
        body += reply.read(size)
        reply.readline()
    return body


def test_daphnes_own_refusals_have_the_json_error_shape(stack):
    _, port = stack.daphne()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"GET /crm-events HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: \x85\r\n\r\n")
        reply = sock.makefile("rb")
        status = reply.readline()
        lines = iter(reply.readline, b"\r\n")
        headers = dict(line.decode().strip().lower().split(": ", 1) for line in lines)
        body = reply.read(int(headers["content-length"])) if "content-length" in headers else chunks(reply)
    assert status.startswith(b"HTTP/1.1 400")
    assert headers["content-type"] == "application/json"
    refusal = {"ok": False, "error": "Bad Request: Invalid header value", "code": "bad_request"}
    assert json.loads(body) == refusal


def test_the_web_process_raises_its_open_files_limit_and_listens_with_the_backlog(stack):
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    port = free_port()
    server = f"exec {sys.executable} -m crm_events.server -b 127.0.0.1 -p {port}"
    web, _ = stack.daphne(port=port, command=["sh", "-c", f"ulimit -Sn 256 && {server}"],
                          env={"WEB_LISTEN_BACKLOG": "333"})
    assert web.log_text().count(NOFILE_RAISED % (256, hard)) == 1
    limits = Path(f"/proc/{web.process.pid}/limits").read_text()
    assert re.search(rf"^Max open files\s+{hard}\s+{hard}\s", limits, re.M), limits
    listening = subprocess.run(["ss", "-ltnH", f"( sport = :{port} )"], capture_output=True, text=True,
                               check=True, timeout=30).stdout.split()
    assert listening[:3] == ["LISTEN", "0", "333"], listening  # ss: Send-Q of a listener is its backlog
