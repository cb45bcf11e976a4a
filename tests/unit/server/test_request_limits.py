"""The request head limits, on Twisted's real HTTP/1.1 channel (the version installed here).

These pin what `LimitedHTTPChannel` relies on in Twisted: which of its methods see each line of
a request's head, that Twisted's own limits stay behind ours, that its bare 400 goes through
the method we override, and that a refused connection reads no further request.
"""

from __future__ import annotations

import json

import pytest
from prometheus_client import REGISTRY
from twisted.internet.testing import StringTransport
from twisted.web import http

from crm_events.config import RequestHeadLimits
from crm_events.server import head_refusals
from crm_events.server.daphne_server import JsonErrorHTTPFactory
from crm_events.server.head_refusals import refusals_build
from crm_events.server.request_limits import (
    limited_protocol,
    request_limits_missing,
)

LIMITS = RequestHeadLimits(request_line=64, header=48, headers_total=100, headers=3)
HOST = b"Host: x"  # 7 bytes, one header


class Recorded(http.Request):
    """Answers every request `200 ok`, and keeps its path."""

    seen: list[bytes] = []

    def process(self) -> None:
        Recorded.seen.append(self.uri)
        self.setResponseCode(200)
        self.write(b"ok")
        self.finish()


@pytest.fixture
def connection():
    Recorded.seen = []
    protocol = limited_protocol(LIMITS, refusals_build(LIMITS))
    protocol.requestFactory = Recorded
    transport = StringTransport()
    protocol.makeConnection(transport)
    return protocol, transport


def answer(transport: StringTransport) -> tuple[int, dict[str, str], dict]:
    head, _, body = transport.value().partition(b"\r\n\r\n")
    status, *lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines)
    assert int(headers["Content-Length"]) == len(body)
    return int(status.split()[1]), headers, json.loads(body)


def request(target: bytes, *headers: bytes) -> bytes:
    return b"GET " + target + b" HTTP/1.1\r\n" + b"".join(h + b"\r\n" for h in headers) + b"\r\n"


def refused_with(transport, status: int, body: dict) -> None:
    code, headers, received = answer(transport)
    assert (code, received) == (status, body)
    assert headers["Content-Type"] == "application/json"
    assert headers["Connection"] == "close"
    assert headers["Cache-Control"] == "no-store"
    assert transport.disconnecting
    assert Recorded.seen == []


def test_the_installed_twisted_has_everything_the_channel_relies_on():
    assert request_limits_missing() == []


def test_a_twisted_without_it_keeps_its_own_channel():
    channel = type("RenamedChannel", (), {"lineReceived": None, "MAX_LENGTH": 1})
    assert request_limits_missing(channel_class=channel, http_module=object()) == [
        "RenamedChannel.lineLengthExceeded", "RenamedChannel.dataReceived", "RenamedChannel.clearLineBuffer",
        "RenamedChannel.connectionLost", "RenamedChannel._respondToBadRequestAndDisconnect",
        "RenamedChannel.totalHeadersSize", "RenamedChannel.maxHeaders", "RenamedChannel.callLater",
        "twisted.web.http._GenericHTTPChannelProtocol",
    ]


def test_a_request_at_every_limit_is_served(connection):
    protocol, transport = connection
    target = b"/" + b"a" * (LIMITS.request_line - len(b"GET / HTTP/1.1"))
    header = b"X-A: " + b"b" * (LIMITS.header - 5)
    filler = b"X-B: " + b"c" * (LIMITS.headers_total - len(HOST) - len(header) - 5)
    protocol.dataReceived(request(target, HOST, header, filler))
    assert Recorded.seen == [target]
    assert transport.value().startswith(b"HTTP/1.1 200 OK\r\n")


def test_a_request_line_one_byte_too_long_gets_414(connection):
    protocol, transport = connection
    protocol.dataReceived(request(b"/" + b"a" * (LIMITS.request_line - len(b"GET / HTTP/1.1") + 1), HOST))
    refused_with(transport, 414, {
        "ok": False, "error": head_refusals.REQUEST_LINE_TOO_LONG.format(max=64),
        "code": "request_line_too_long", "limit": "request_line", "max": 64,
    })


@pytest.mark.parametrize("size", [10_000, 1_000_000])
def test_a_line_still_arriving_past_twisteds_line_limit_is_refused_at_once(connection, size):
    """LineReceiver calls lineLengthExceeded before the line's end arrives."""
    protocol, transport = connection
    protocol.dataReceived(b"GET /" + b"a" * size)
    assert answer(transport)[0] == 414


def test_a_header_still_arriving_gets_431(connection):
    protocol, transport = connection
    protocol.dataReceived(b"GET / HTTP/1.1\r\nHost: x\r\nCookie: " + b"a" * 100_000)
    refused_with(transport, 431, {
        "ok": False, "error": head_refusals.HEADER_TOO_LONG.format(max=48),
        "code": "headers_too_large", "limit": "header", "max": 48,
    })


def test_one_header_one_byte_too_long_gets_431(connection):
    protocol, transport = connection
    protocol.dataReceived(request(b"/", HOST, b"X-A: " + b"b" * (LIMITS.header - 4)))
    assert answer(transport)[2]["limit"] == "header"


def test_headers_adding_up_past_the_limit_get_431(connection):
    protocol, transport = connection
    protocol.dataReceived(request(b"/", HOST, b"X-A: " + b"b" * 40, b"X-B: " + b"c" * 40, b"X-C: 1"))
    refused_with(transport, 431, {
        "ok": False, "error": head_refusals.HEADERS_TOO_LARGE.format(max=100),
        "code": "headers_too_large", "limit": "headers_total", "max": 100,
    })


def test_one_header_too_many_gets_431(connection):
    protocol, transport = connection
    protocol.dataReceived(request(b"/", HOST, b"A: 1", b"B: 2", b"C: 3"))
    refused_with(transport, 431, {
        "ok": False, "error": head_refusals.TOO_MANY_HEADERS.format(max=3),
        "code": "headers_too_large", "limit": "headers", "max": 3,
    })


def test_a_folded_line_continues_its_header_and_is_not_counted(connection):
    protocol, transport = connection
    protocol.dataReceived(request(b"/", HOST, b"A: 1", b" more", b"\tand more", b"B: 2"))
    assert Recorded.seen == [b"/"]


@pytest.mark.parametrize("head", [
    b"GET /\r\n\r\n",  # no version
    b"GET / HTTP/1.1\r\nNoColon\r\n\r\n",
    b"GET / HTTP/1.1\r\nContent-Length: -5\r\n\r\n",
    b"GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
])
def test_what_twisted_cannot_parse_gets_a_json_400_not_its_bare_one(connection, head):
    protocol, transport = connection
    protocol.dataReceived(head)
    refused_with(transport, 400, {"ok": False, "error": head_refusals.MALFORMED, "code": "bad_request"})


def test_after_a_refusal_nothing_more_is_read_as_a_request(connection):
    protocol, transport = connection
    protocol.dataReceived(request(b"/" + b"a" * 100, HOST) + request(b"/next", HOST))
    protocol.dataReceived(request(b"/later", HOST))
    assert answer(transport)[0] == 414
    assert Recorded.seen == []


def test_the_counts_start_again_with_each_request_on_a_connection(connection):
    protocol, transport = connection
    for path in (b"/1", b"/2", b"/3"):
        protocol.dataReceived(request(path, HOST, b"A: 1", b"X-A: " + b"b" * 40))
    assert Recorded.seen == [b"/1", b"/2", b"/3"]
    assert not transport.disconnecting


def test_an_empty_line_before_a_request_is_skipped_as_twisted_does(connection):
    protocol, _ = connection
    protocol.dataReceived(b"\r\n" + request(b"/ie", HOST))
    assert Recorded.seen == [b"/ie"]


@pytest.mark.parametrize("limited", [True, False])
def test_the_servers_http_factory_builds_limited_channels_unless_the_probe_failed(limited):
    """With limits, a JSON 414; without (the probe found Twisted changed), Twisted's own silent close."""
    factory = JsonErrorHTTPFactory(server=object(), limits=LIMITS if limited else None)
    protocol = factory.buildProtocol(None)
    transport = StringTransport()
    protocol.makeConnection(transport)
    protocol.dataReceived(b"GET /" + b"a" * 70_000)
    assert transport.disconnecting
    if limited:
        assert answer(transport)[0] == 414
    else:
        assert transport.value() == b""


@pytest.mark.parametrize(("data", "limit"), [
    (request(b"/" + b"a" * 100, HOST), "request_line"),
    (request(b"/", HOST, b"A: 1", b"B: 2", b"C: 3"), "headers"),
    (b"GET / HTTP/1.1\r\nNoColon\r\n\r\n", "malformed"),
])
def test_each_refusal_is_counted_by_what_was_refused(connection, data, limit):
    def count() -> float:
        return REGISTRY.get_sample_value("aetherlink_http_requests_refused_total", {"limit": limit}) or 0.0

    before = count()
    connection[0].dataReceived(data)
    connection[0].dataReceived(data)  # the same connection reads no more requests: counted once
    assert count() == before + 1
