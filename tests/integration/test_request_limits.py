"""Oversized requests against a real `aetherlink-web`: a JSON 414 or 431, never a silent close.

Each request is one raw HTTP/1.1 exchange over a socket: the whole request is sent, then the
answer read until the server closes, within DEADLINE. Sizes are of the lines without CRLF,
as the limits count them (crm_events/server/request_limits.py).
"""

from __future__ import annotations

import json
import socket
import time
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from crm_events.config import RequestHeadLimits
from crm_events.ops.error_views import TOO_MANY_PARAMETERS
from crm_events.ops.method_not_allowed import METHOD_NOT_ALLOWED
from crm_events.server.head_refusals import (
    HEADER_TOO_LONG,
    HEADERS_TOO_LARGE,
    REQUEST_LINE_TOO_LONG,
    TOO_MANY_HEADERS,
)
from crm_events.server.request_limits import LINGER_SECONDS
from tests.support.processes import wait_until

DEADLINE = 10.0  # seconds for the whole answer, from the first byte sent
DEFAULTS = RequestHeadLimits()
# The headers every request here sends: 2 headers, 32 bytes.
BASE = [("Host", "127.0.0.1"), ("Connection", "close")]
BASE_BYTES = sum(len(name) + 2 + len(value) for name, value in BASE)


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> dict:
        return json.loads(self.body)


def request_bytes(target: str, headers: list[tuple[str, str]], method: str = "GET") -> bytes:
    lines = [f"{method} {target} HTTP/1.1", *(f"{name}: {value}" for name, value in BASE + headers)]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def exchange(port: int, data: bytes) -> Answer:
    """Send `data`, read until the server closes; a close with no answer fails here."""
    deadline = time.monotonic() + DEADLINE
    received = b""
    with socket.create_connection(("127.0.0.1", port), timeout=DEADLINE) as sock:
        sock.sendall(data)
        while chunk := sock.recv(65536):
            received += chunk
            sock.settimeout(max(0.01, deadline - time.monotonic()))
    assert received, f"closed without an answer ({len(data)} bytes sent)"
    head, _, body = received.partition(b"\r\n\r\n")
    status, *lines = head.decode("latin-1").split("\r\n")
    headers = {name.lower(): value for name, _, value in (line.partition(": ") for line in lines)}
    if headers.get("transfer-encoding") == "chunked":
        body = dechunk(body)
    else:
        assert int(headers["content-length"]) == len(body), (headers, body[:200])
    return Answer(int(status.split()[1]), headers, body)


def dechunk(body: bytes) -> bytes:
    decoded = b""
    while size := int(body.partition(b"\r\n")[0], 16):
        start = body.index(b"\r\n") + 2
        decoded, body = decoded + body[start:start + size], body[start + size + 2:]
    return decoded


def target_of(size: int, path: str = "/healthz") -> str:
    """A target whose request line (`GET <target> HTTP/1.1`) is `size` bytes long."""
    padding = size - len(f"GET {path}? HTTP/1.1")
    return f"{path}?" + "p" * padding


def header_of(size: int, name: str = "X-Pad") -> tuple[str, str]:
    """A header whose line (`name: value`) is `size` bytes long."""
    return name, "v" * (size - len(name) - 2)


def refusal(status: int, limit: str, size: int) -> dict:
    message = {"request_line": REQUEST_LINE_TOO_LONG, "header": HEADER_TOO_LONG,
               "headers_total": HEADERS_TOO_LARGE, "headers": TOO_MANY_HEADERS}[limit]
    code = "request_line_too_long" if status == 414 else "headers_too_large"
    return {"ok": False, "error": message.format(max=size), "code": code, "limit": limit, "max": size}


def assert_refused(answer: Answer, status: int, limit: str, size: int) -> None:
    assert (answer.status, answer.json()) == (status, refusal(status, limit, size))
    assert answer.headers["content-type"] == "application/json"
    assert answer.headers["connection"] == "close"
    assert answer.headers["cache-control"] == "no-store"


def assert_served(answer: Answer) -> None:
    assert (answer.status, answer.json()) == (200, {"ok": True}), answer


@pytest.fixture
def web(stack) -> int:
    _, port = stack.daphne(env={"SSE_AUTH_MODE": "none"})
    return port


def test_a_request_line_over_the_limit_gets_414_and_one_at_it_is_served(web):
    assert_refused(exchange(web, request_bytes(target_of(DEFAULTS.request_line + 1), [])),
                   414, "request_line", DEFAULTS.request_line)
    assert_refused(exchange(web, request_bytes(target_of(100_000), [])),
                   414, "request_line", DEFAULTS.request_line)
    assert_served(exchange(web, request_bytes(target_of(DEFAULTS.request_line), [])))


def test_one_header_over_the_limit_gets_431_and_one_at_it_is_served(web):
    assert_refused(exchange(web, request_bytes("/healthz", [header_of(DEFAULTS.header + 1)])),
                   431, "header", DEFAULTS.header)
    assert_served(exchange(web, request_bytes("/healthz", [header_of(DEFAULTS.header)])))


def test_headers_adding_up_past_the_limit_get_431_and_up_to_it_are_served(web):
    first = header_of(DEFAULTS.header, "X-One")
    rest = DEFAULTS.headers_total - BASE_BYTES - DEFAULTS.header
    assert_refused(exchange(web, request_bytes("/healthz", [first, header_of(rest + 1, "X-Two")])),
                   431, "headers_total", DEFAULTS.headers_total)
    assert_served(exchange(web, request_bytes("/healthz", [first, header_of(rest, "X-Two")])))


def test_more_headers_than_the_limit_get_431_and_as_many_are_served(web):
    many = [(f"X-{i}", "1") for i in range(DEFAULTS.headers - len(BASE))]
    assert_refused(exchange(web, request_bytes("/healthz", [*many, ("X-Last", "1")])),
                   431, "headers", DEFAULTS.headers)
    assert_served(exchange(web, request_bytes("/healthz", many)))


def test_a_1_mb_cookie_and_a_105_kb_token_get_431_and_a_16_kb_cookie_is_served(web):
    for header in (("Cookie", "c=" + "x" * 1_000_000), ("Authorization", "Bearer " + "t" * 105_000)):
        assert_refused(exchange(web, request_bytes("/crm-events", [header])), 431, "header", DEFAULTS.header)
    assert_served(exchange(web, request_bytes("/healthz", [("Cookie", "c=" + "x" * 16 * 1024)])))


def test_a_client_still_sending_after_its_refusal_is_read_on_not_reset(web):
    """The server half-closes after its answer and drops what still comes: a client uploading a
    large cookie on a slow link reads its 431 instead of a reset (which could lose it)."""
    with socket.create_connection(("127.0.0.1", web), timeout=DEADLINE) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: c=" + b"x" * (DEFAULTS.header + 1))
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
        assert received.startswith(b"HTTP/1.1 431 "), received[:100]
        sock.sendall(b"x" * 1_000_000)  # a closed server would reset: ConnectionResetError, BrokenPipeError
        # ... but not for ever: after LINGER_SECONDS the server cuts the connection.
        started = time.monotonic()
        wait_until(lambda: cut_off(sock), timeout=LINGER_SECONDS + DEADLINE, what="the server to cut off")
        assert time.monotonic() - started > LINGER_SECONDS - 1


def cut_off(sock: socket.socket) -> bool:
    try:
        sock.sendall(b"x")
    except OSError:
        return True
    return False


def test_the_largest_resume_id_the_service_accepts_reaches_the_stream_view(web):
    """Far below the limits: a 4,096-character Last-Event-ID with a 16 KiB cookie is judged by the
    view (this one is no valid id: its 400 names the header), not refused by the server."""
    headers = [("Last-Event-ID", "A" * 4096), ("Cookie", "c=" + "x" * 16 * 1024)]
    answer = exchange(web, request_bytes("/crm-events", headers))
    assert (answer.status, answer.json()["parameter"]) == (400, "Last-Event-ID")


def test_5000_query_parameters_get_a_json_400(web):
    answer = exchange(web, request_bytes("/crm-events?" + "&".join(["a=1"] * 5000), []))
    assert (answer.status, answer.json()) == (
        400, {"ok": False, "error": TOO_MANY_PARAMETERS, "code": "bad_request"})
    assert answer.headers["content-type"] == "application/json"
    # The same parameters in a line over the limit: the server refuses the line first.
    answer = exchange(web, request_bytes("/crm-events?" + "&".join(["kind=deal"] * 5000), []))
    assert_refused(answer, 414, "request_line", DEFAULTS.request_line)


def test_a_method_not_allowed_gets_a_json_405_with_allow(web):
    answer = exchange(web, request_bytes("/crm-events", [("Content-Length", "0")], method="POST"))
    assert (answer.status, answer.json()) == (405, {
        "ok": False, "error": METHOD_NOT_ALLOWED, "code": "method_not_allowed", "allowed": ["GET"]})
    assert answer.headers["allow"] == "GET"
    assert answer.headers["content-type"] == "application/json"


# --- Any sizes around configured limits: the exact answer the limits call for ---------------------

SMALL = RequestHeadLimits(request_line=600, header=300, headers_total=1000, headers=8)


def expected(line: int, headers: list[int], limits: RequestHeadLimits) -> tuple[int, str, int] | None:
    """The refusal a request with these line sizes earns, the first line over a limit deciding."""
    if line > limits.request_line:
        return 414, "request_line", limits.request_line
    total = 0
    for count, size in enumerate([len(f"{n}: {v}") for n, v in BASE] + headers, start=1):
        total += size
        if size > limits.header:
            return 431, "header", limits.header
        if total > limits.headers_total:
            return 431, "headers_total", limits.headers_total
        if count > limits.headers:
            return 431, "headers", limits.headers
    return None


def around(limit: int, shortest: int) -> st.SearchStrategy[int]:
    return st.integers(limit - 3, limit + 3) | st.integers(shortest, 2 * limit)


def test_any_request_head_gets_its_answer_or_its_json_refusal_never_a_silent_close(stack):
    _, port = stack.daphne(env={
        "WEB_MAX_REQUEST_LINE_BYTES": str(SMALL.request_line), "WEB_MAX_HEADER_BYTES": str(SMALL.header),
        "WEB_MAX_HEADERS_BYTES": str(SMALL.headers_total), "WEB_MAX_HEADERS": str(SMALL.headers),
    })

    @example(line=SMALL.request_line, headers=[SMALL.header, SMALL.headers_total - 32 - SMALL.header])
    @example(line=SMALL.request_line + 1, headers=[SMALL.header + 1])
    @example(line=40, headers=[10] * (SMALL.headers - 2))
    @example(line=40, headers=[10] * (SMALL.headers - 1))
    @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
    @given(line=around(SMALL.request_line, 24),
           headers=st.lists(around(SMALL.header, 10), max_size=SMALL.headers + 2))
    def check(line, headers):
        sent = [header_of(size, f"X-{i}") for i, size in enumerate(headers)]
        answer = exchange(port, request_bytes(target_of(line), sent))
        refused = expected(line, headers, SMALL)
        if refused is None:
            assert_served(answer)
        else:
            assert_refused(answer, *refused)

    check()
