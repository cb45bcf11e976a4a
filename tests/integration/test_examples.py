"""The clients in `examples/` (curl, Python with httpx-sse, Node with eventsource, a browser page)
run as they are against the real stack: they receive events, and resume across streams the
server ends (a short SSE_MAX_LIFETIME: `reconnect` frames) and across a Daphne restart, with
nothing lost or duplicated."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from threading import Thread
from urllib.parse import quote, urlsplit

import jwt
import pytest
from playwright.sync_api import Request, expect, sync_playwright

from scripts.servers import free_port
from tests.integration.conftest import produce
from tests.support.browser import CHROMIUM_ARGS, chromium_ensure
from tests.support.example_clients import ExampleClient, key_of, key_shown
from tests.support.kafka_log import assert_exactly, positions_of
from tests.support.node import EXAMPLES
from tests.support.processes import daphne_start, wait_until
from tests.support.prometheus import metric_value, metrics_text

pytestmark = pytest.mark.integration

KINDS = ["deal.won", "ticket.opened", "deal.created", "contact.updated"]
JWT_KEY = "examples-test-secret-that-is-at-least-32-bytes"
JWT_COOKIE = "crm_events_token"
WAIT_MS = 30_000


# Each row's key: between the type and the position, `deal.won <key> (topic/0@3)`.
KEYS_SHOWN = "items => items.map(i => i.textContent.split(' ').slice(1, -1).join(' '))"


def events_produce(bootstrap: str, topic: str, count: int, first: int) -> dict[tuple[int, int], str]:
    """`count` events of mixed kinds over the 3 partitions; {(partition, offset): type}."""
    types = [KINDS[i % len(KINDS)] for i in range(first, first + count)]
    values = [json.dumps({"type": t, "seq": i}).encode() for i, t in enumerate(types, start=first)]
    keys = [key_of(seq) for seq in range(first, first + count)]
    sending = produce(bootstrap, topic, values, keys=keys, partitions=[i % 3 for i in range(count)])
    with ThreadPoolExecutor(1) as thread:  # Playwright's sync API holds this thread's event loop
        positions = thread.submit(asyncio.run, sending).result()
    return dict(zip(positions, types, strict=True))


def deals(produced: dict[tuple[int, int], str]) -> set[tuple[int, int]]:
    return {position for position, kind in produced.items() if kind.startswith("deal.")}


@pytest.fixture
def clients() -> Iterator[list[ExampleClient]]:
    started: list[ExampleClient] = []
    yield started
    for client in started:
        client.stop()


def test_curl_python_and_node_clients_resume_across_stream_ends_and_a_restart(stack, kafka, topic, clients):
    stack.env.update(SSE_MAX_LIFETIME="3", SSE_RETRY_MS="300", SSE_HEARTBEAT_INTERVAL="1")
    stack.consumer()
    daphne, port = stack.daphne()
    stack.wait_ready(port)
    client_env = {**stack.env, "CRM_EVENTS_URL": f"http://127.0.0.1:{port}/crm-events"}
    for name in ("curl", "python", "node"):
        clients.append(ExampleClient(name, ["kind=deal"], client_env, stack.log_dir))
    wait_until(lambda: all(c.of_kind("connected") for c in clients), timeout=30, what="all clients connected")

    produced: dict[tuple[int, int], str] = {}
    deadline = time.monotonic() + 4  # over a lifetime: every stream is ended by the server once
    while time.monotonic() < deadline:
        produced |= events_produce(kafka.bootstrap, topic, 8, len(produced))
    wait_until(lambda: all(len(c.domain_events()) == len(deals(produced)) for c in clients),
               timeout=30, what="the events before the restart")

    # Streams end by lifetime every 3 s: stop the server when every client is well inside one, so
    # each gets the shutdown frame rather than being between two streams at that moment.
    wait_until(lambda: all((age := c.stream_age()) is not None and age < 2.5 for c in clients),
               timeout=30, what="every client inside a stream with time left")
    daphne.stop()  # SIGTERM: streams get `reconnect` (shutdown); events go on meanwhile
    produced |= events_produce(kafka.bootstrap, topic, 12, len(produced))
    stack.processes.append(daphne_start(stack.env, port, stack.log_dir, name="daphne-restarted"))
    produced |= events_produce(kafka.bootstrap, topic, 12, len(produced))

    # Then deals in every partition, after the rest: a duplicate of an earlier event would come
    # before them, in its partition's order, so once they are in, so is any duplicate.
    last = events_produce(kafka.bootstrap, topic, 12, len(produced))
    assert {partition for partition, _offset in deals(last)} == {0, 1, 2}
    produced |= last
    wanted = deals(produced)
    wait_until(lambda: all(set(positions_of(c.domain_events())) >= wanted for c in clients), timeout=60,
               what=f"all {len(wanted)} deals at every client")
    for client in clients:
        assert_exactly(client.domain_events(), wanted)
        reasons = {frame["reason"] for frame in client.of_kind("reconnect")}
        assert {"lifetime", "shutdown"} <= reasons, (client.name, reasons, client.stderr_text())
        # Connected at first, again after a lifetime, and after the restart.
        assert len(client.of_kind("connected")) >= 3, client.name
        assert {e["type"] for e in client.domain_events()} == {"deal.won", "deal.created"}


# --- the browser page ---------------------------------------------------------------------


@pytest.fixture
def page_server() -> Iterator[str]:
    """`examples/browser/` served as it is, from an origin other than the service's."""
    server = ThreadingHTTPServer(
        ("127.0.0.1", free_port()), partial(SimpleHTTPRequestHandler, directory=str(EXAMPLES / "browser"))
    )
    Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def browser(topic):
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium_ensure(), args=CHROMIUM_ARGS)
        yield launched
        launched.close()


def test_the_browser_page_streams_with_a_jwt_cookie_and_resumes_on_reload(
    stack, kafka, topic, page_server, browser
):
    stack.env.update(
        SSE_AUTH_MODE="jwt", SSE_JWT_KEY=JWT_KEY, SSE_JWT_COOKIE=JWT_COOKIE, SSE_CORS_ORIGINS=page_server,
        SSE_MAX_LIFETIME="3", SSE_RETRY_MS="300",
    )
    stack.consumer()
    _, port = stack.daphne()
    stack.wait_ready(port)
    service = f"http://127.0.0.1:{port}"
    page_url = f"{page_server}/index.html?stream={quote(service + '/crm-events')}&kind=deal"

    anonymous = browser.new_context()
    refused = anonymous.new_page()
    refused.goto(page_url)
    expect(refused.locator("#status")).to_have_attribute("data-state", "refused", timeout=WAIT_MS)
    anonymous.close()

    context = browser.new_context()
    token = jwt.encode({"sub": "example-page", "exp": int(time.time()) + 600}, JWT_KEY, algorithm="HS256")
    context.add_cookies([{"name": JWT_COOKIE, "value": token, "url": service, "httpOnly": True}])
    streams: list[Request] = []
    context.on("request", lambda r: streams.append(r) if urlsplit(r.url).path == "/crm-events" else None)
    try:
        page = context.new_page()
        page.goto(page_url)
        expect(page.locator("#status")).to_have_attribute("data-state", "live", timeout=WAIT_MS)
        produced = events_produce(kafka.bootstrap, topic, 12, 0)
        expect(page.locator("#events li")).to_have_count(len(deals(produced)), timeout=WAIT_MS)
        assert sorted(page.eval_on_selector_all("#events li", KEYS_SHOWN)) == sorted(
            key_shown(seq) for seq in range(12) if KINDS[seq % len(KINDS)].startswith("deal.")
        )
        # The server ends the stream after its lifetime; EventSource comes back with Last-Event-ID
        # (Playwright does not report EventSource's own reconnects: the server counts them).
        wait_until(lambda: resumes(port) >= 1, timeout=20, what="a resume after the stream's lifetime")
        produced |= events_produce(kafka.bootstrap, topic, 12, 12)
        expect(page.locator("#events li")).to_have_count(len(deals(produced)), timeout=WAIT_MS)
        assert page_positions(page) == deals(produced)
        page.close()

        missed = events_produce(kafka.bootstrap, topic, 12, 24)  # while no page is open
        first_request, resumed_before = len(streams), resumes(port)
        page = context.new_page()
        page.goto(page_url)
        expect(page.locator("#status")).to_have_attribute("data-state", "live", timeout=WAIT_MS)
        later = events_produce(kafka.bootstrap, topic, 12, 36)
        # Then deals in every partition, after the rest: once they are shown, so is any duplicate.
        last = events_produce(kafka.bootstrap, topic, 12, 48)
        assert {partition for partition, _offset in deals(last)} == {0, 1, 2}
        expect(page.locator("#events li")).to_have_count(len(deals(missed | later | last)), timeout=WAIT_MS)
        assert page_positions(page) == deals(missed | later | last)
        assert page.locator("#events li").count() == len(deals(missed | later | last))
        assert "last_event_id=" in streams[first_request].url  # the first connect resumed
        assert resumes(port) > resumed_before
    finally:
        context.close()


def resumes(port: int) -> float:
    return metric_value(metrics_text(port), "aetherlink_sse_resumes_total")


def page_positions(page) -> set[tuple[int, int]]:
    found = page.eval_on_selector_all("#events li", "items => items.map(i => i.dataset.position)")
    return {tuple(int(part) for part in position.split(":")) for position in found}
