"""The Next.js example, built and served by `next start` (Node 20) as it is in `examples/nextjs/`,
against the real stack: its route handler `/api/ops/crm-events` streams `/crm-events` through
unbuffered, forwarding the filters, Last-Event-ID and the caller's Authorization header or JWT
cookie, passes refusals on, and closes the upstream stream when its client leaves; the React
widget on its page lists events, pauses, filters by kind and shows the reconnects."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import jwt
import pytest
from playwright.sync_api import expect, sync_playwright

from crm_events.streams.request import REPEATABLE, SINGLE
from scripts.servers import free_port
from tests.integration.conftest import produce
from tests.support.browser import CHROMIUM_ARGS, chromium_ensure
from tests.support.example_clients import key_of, key_shown
from tests.support.kafka_log import assert_exactly, domain_events, positions_of
from tests.support.node import NEXTJS, nextjs_build, nextjs_env, node_ensure
from tests.support.processes import ServiceProcess, daphne_start, http_get, wait_until
from tests.support.sse_client import SseConnection

pytestmark = pytest.mark.integration

JWT_KEY = "nextjs-test-secret-that-is-at-least-32-bytes"
JWT_COOKIE = "crm_events_token"
KINDS = ["deal.won", "ticket.opened", "lead.created", "deal.created"]
ROUTE = "/api/ops/crm-events"
WAIT_MS = 30_000


def bearer(subject: str = "ops-dashboard") -> str:
    claims = {"sub": subject, "exp": int(time.time()) + 600}
    return jwt.encode(claims, JWT_KEY, algorithm="HS256")


# Each row's key: its text between the <code> type and the <small> position.
KEYS_SHOWN = """items => items.map(i => i.textContent.slice(
    i.querySelector('code').textContent.length + 1, -i.querySelector('small').textContent.length - 1))"""


def events_produce(bootstrap: str, topic: str, count: int, first: int) -> dict[tuple[int, int], str]:
    types = [KINDS[i % len(KINDS)] for i in range(first, first + count)]
    values = [json.dumps({"type": t, "seq": i}).encode() for i, t in enumerate(types, start=first)]
    keys = [key_of(seq) for seq in range(first, first + count)]
    sending = produce(bootstrap, topic, values, keys=keys, partitions=[i % 3 for i in range(count)])
    with ThreadPoolExecutor(1) as thread:  # not on Playwright's thread (see test_viewer.py)
        positions = thread.submit(asyncio.run, sending).result()
    return dict(zip(positions, types, strict=True))


def of_kind(produced: dict[tuple[int, int], str], prefix: str) -> set[tuple[int, int]]:
    return {position for position, kind in produced.items() if kind.startswith(prefix)}


def streams_open(port: int) -> int:
    return http_get(port, "/readyz")[1]["streams"]


@pytest.fixture
def service(stack):
    stack.env.update(SSE_AUTH_MODE="jwt", SSE_JWT_KEY=JWT_KEY, SSE_JWT_COOKIE=JWT_COOKIE, SSE_RETRY_MS="300")
    stack.consumer()
    daphne, port = stack.daphne()
    stack.wait_ready(port)
    return daphne, port


@pytest.fixture
def nextjs(service, stack) -> Iterator[int]:
    """`next start` of the built example, proxying to this test's Daphne."""
    nextjs_build()
    port = free_port()
    env = {**nextjs_env(), "CRM_EVENTS_URL": f"http://127.0.0.1:{service[1]}/crm-events",
           "CRM_EVENTS_JWT_COOKIE": JWT_COOKIE}
    argv = [node_ensure(), "node_modules/next/dist/bin/next", "start", "-H", "127.0.0.1", "-p", str(port)]
    process = ServiceProcess("nextjs", argv, env, stack.log_dir, cwd=NEXTJS)
    try:
        wait_until(lambda: status_or_none(port) == 200 or not process.is_running(), timeout=60,
                   what="next start to answer /")
        assert process.is_running(), process.log_text()
        yield port
    finally:
        process.stop()


def status_or_none(port: int) -> int | None:
    try:
        return http_get(port, "/", timeout=2)[0]
    except OSError:
        return None


async def test_the_route_handler_streams_filters_resumes_and_lets_go(service, nextjs, kafka, topic):
    _, daphne_port = service
    auth = {"Authorization": f"Bearer {bearer()}"}
    refused = await SseConnection.open("127.0.0.1", nextjs, ROUTE)
    while not refused.ended:
        refused.feed(await refused.read_raw())
    refused.close()
    assert (refused.status, refused.headers["content-type"]) == (401, "application/json")
    assert refused.headers["www-authenticate"] == 'Bearer realm="crm-events"'
    assert json.loads(refused.raw_body)["code"] == "unauthorized"

    live = await SseConnection.open("127.0.0.1", nextjs, f"{ROUTE}?kind=deal&canary=0", auth)
    assert (live.status, live.headers["content-type"]) == (200, "text/event-stream; charset=utf-8")
    await live.events_until(lambda events: any('"connected"' in e.data for e in events), timeout=20)
    assert await asyncio.to_thread(streams_open, daphne_port) == 1
    produced = await asyncio.to_thread(events_produce, kafka.bootstrap, topic, 16, 0)
    deals = of_kind(produced, "deal.")
    # Unbuffered: events produced after the stream opened arrive while it stays open.
    await live.events_until(lambda _: len(domain_events(live)) >= len(deals), timeout=20)
    assert not live.ended
    assert_exactly(domain_events(live), deals)

    # Last-Event-ID and last_event_id pass through: resuming from the 3rd deal gives the rest.
    third = [e.id for e in live.parser.events if e.data and '"domain_event"' in e.data][2]
    rest = set(positions_of(domain_events(live)[3:]))
    cookie = {"Cookie": f"theme=dark; {JWT_COOKIE}={bearer('cookie-user')}"}
    for path, headers in [(f"{ROUTE}?kind=deal", {**auth, "Last-Event-ID": third}),
                          (f"{ROUTE}?kind=deal&last_event_id={third}", cookie)]:
        resumed = await SseConnection.open("127.0.0.1", nextjs, path, headers)
        assert resumed.status == 200, path
        await resumed.events_until(lambda _, r=resumed: len(domain_events(r)) >= len(rest), timeout=20)
        assert_exactly(domain_events(resumed), rest)
        resumed.abort()

    # The browser leaves: the route handler aborts its fetch and the service closes the stream.
    live.abort()
    await asyncio.to_thread(wait_until, lambda: streams_open(daphne_port) == 0, timeout=20,
                            what="the service's stream to close after the proxy's client left")


@pytest.fixture
def browser(topic):
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium_ensure(), args=CHROMIUM_ARGS)
        yield launched
        launched.close()


def test_the_widget_lists_pauses_filters_and_rides_out_a_restart(
    service, nextjs, stack, kafka, topic, browser
):
    daphne, daphne_port = service
    site = f"http://127.0.0.1:{nextjs}"
    context = browser.new_context(base_url=site)
    context.add_cookies([{"name": JWT_COOKIE, "value": bearer("widget"), "url": site, "httpOnly": True}])
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    rows, status = page.get_by_test_id("events").locator("li"), page.get_by_test_id("status")
    try:
        page.goto("/")
        expect(status).to_have_attribute("data-state", "live", timeout=WAIT_MS)
        produced = events_produce(kafka.bootstrap, topic, 8, 0)
        expect(rows).to_have_count(8, timeout=WAIT_MS)
        keys = page.eval_on_selector_all("[data-position]", KEYS_SHOWN)
        assert sorted(keys) == sorted(key_shown(seq) for seq in range(8))

        page.get_by_role("button", name="deal", exact=True).click()  # kind=deal, from the live edge
        expect(status).to_have_attribute("data-state", "live", timeout=WAIT_MS)
        expect(rows).to_have_count(0)
        produced = events_produce(kafka.bootstrap, topic, 8, 8)
        expect(rows).to_have_count(len(of_kind(produced, "deal.")), timeout=WAIT_MS)
        assert set(page.eval_on_selector_all("[data-kind]", "r => r.map(i => i.dataset.kind)")) \
            == {"deal.won", "deal.created"}

        page.get_by_test_id("pause").click()
        later = events_produce(kafka.bootstrap, topic, 8, 16)
        waiting = str(len(of_kind(later, "deal.")))
        expect(page.get_by_test_id("waiting")).to_have_text(waiting, timeout=WAIT_MS)
        expect(rows).to_have_count(len(of_kind(produced, "deal.")))  # paused: nothing new shown
        page.get_by_test_id("pause").click()
        expect(rows).to_have_count(len(of_kind(produced | later, "deal.")))

        daphne.stop()  # the stream ends with `reconnect` (shutdown); the proxy answers `unavailable`
        expect(status).to_have_attribute("data-state", "reconnecting", timeout=WAIT_MS)
        during = events_produce(kafka.bootstrap, topic, 8, 24)
        stack.processes.append(daphne_start(stack.env, daphne_port, stack.log_dir, name="daphne-restarted"))
        expect(status).to_have_attribute("data-state", "live", timeout=WAIT_MS)
        after = events_produce(kafka.bootstrap, topic, 8, 32)
        wanted = of_kind(produced | later | during | after, "deal.")
        expect(rows).to_have_count(len(wanted), timeout=WAIT_MS)
        shown = page.eval_on_selector_all("[data-position]", "r => r.map(i => i.dataset.position)")
        assert sorted(tuple(map(int, p.split(":"))) for p in shown) == sorted(wanted)
        assert errors == []
    finally:
        context.close()


def test_the_route_handler_passes_on_every_parameter_the_service_takes():
    text = (NEXTJS / "app" / "api" / "ops" / "crm-events" / "route.js").read_text()
    listed = re.search(r"const PARAMETERS = new Set\(\[(.*?)\]\);", text, re.S)
    assert listed is not None
    assert set(re.findall(r"'([a-z0-9_]+)'", listed.group(1))) == REPEATABLE | SINGLE
