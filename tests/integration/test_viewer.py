"""The live viewer in a real browser (Debian's chromium via Playwright) against the real stack:
Kafka, Redis, `consume_events` and Daphne, with the staff user in the SQLite database the
Daphne process uses."""

from __future__ import annotations

import asyncio
import json
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.sync_api import Browser, Page, Request, expect, sync_playwright

from crm_events.streams.request import INTEGER_INVALID, PARTITION_MAX
from scripts.servers.apicurio import ApicurioServer
from tests.integration.conftest import produce
from tests.support.browser import CHROMIUM_ARGS, chromium_ensure
from tests.support.processes import ROOT, ServiceProcess, daphne_start, service_env, wait_until
from tests.support.registry_producer import ForeignProducer, avro_deal_json, confluent_produce

ARTIFACTS = ROOT / "artifacts"
VIEWER = "/admin/live-events/"
STAFF, STAFF_PASSWORD = "staff", "staff-password-1"
CLERK, CLERK_PASSWORD = "clerk", "clerk-password-1"
USERS_CREATE = (
    "import django; django.setup(); from django.contrib.auth.models import User; "
    f"User.objects.create_user({STAFF!r}, password={STAFF_PASSWORD!r}, is_staff=True); "
    f"User.objects.create_user({CLERK!r}, password={CLERK_PASSWORD!r})"
)
WAIT_MS = 30_000


def django_run(env: dict[str, str], code: str) -> None:
    """Run Django code against the test's database (`env`'s DATABASE_URL), in a process of its own."""
    done = subprocess.run(
        [sys.executable, "-c", f"import django; django.setup(); {code}"], cwd=ROOT, capture_output=True,
        text=True, timeout=120, env={**env, "DJANGO_SETTINGS_MODULE": "aetherlink.settings"},
    )
    assert done.returncode == 0, done.stderr


def grant_give(env: dict[str, str], username: str, grant: dict) -> None:
    """Give a user a stream grant of their own (under SSE_AUTH_MODE=session, staff need one)."""
    django_run(env, (
        "from django.contrib.auth.models import User; from crm_events.models import AccessGrant; "
        f"AccessGrant.objects.create(user=User.objects.get(username={username!r}), grant={grant!r})"
    ))

pytestmark = pytest.mark.integration


# --- fixtures -----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def viewer_db_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite database with a staff user and a non-staff user, copied per test."""
    path = tmp_path_factory.mktemp("viewer-db") / "template.sqlite3"
    env = service_env(DATABASE_URL=f"sqlite:///{path}", DJANGO_SETTINGS_MODULE="aetherlink.settings")
    for argv in (["manage.py", "migrate", "--noinput", "-v", "0"], ["-c", USERS_CREATE]):
        done = subprocess.run(
            [sys.executable, *argv], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
        )
        assert done.returncode == 0, done.stderr
    return path


@pytest.fixture
def viewer_env(
    env: dict[str, str], tmp_path: Path, viewer_db_template: Path, request: pytest.FixtureRequest
) -> dict[str, str]:
    """The service's environment; `@pytest.mark.viewer_env(NAME="value")` adds to it."""
    marker = request.node.get_closest_marker("viewer_env")
    if marker is not None:
        env.update(marker.kwargs)
    database = tmp_path / "db.sqlite3"
    shutil.copyfile(viewer_db_template, database)
    env["DATABASE_URL"] = f"sqlite:///{database}"
    return env


@dataclass
class Service:
    port: int
    daphne: ServiceProcess

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@pytest.fixture
def service(stack, viewer_env) -> Service:
    stack.consumer()
    daphne, port = stack.daphne()
    stack.wait_ready(port)
    return Service(port, daphne)


@pytest.fixture
def browser(topic: str) -> Iterator[Browser]:
    """Chromium for one test. Playwright's sync API marks its event loop as running in this
    thread, so `asyncio.run` (the `topic` fixture, producing) must happen before it starts
    or in another thread: hence one browser per test, started after the topic exists."""
    executable = chromium_ensure()
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


class ViewerPage:
    """One browser tab on the service, recording the stream requests it makes."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.stream_requests: list[Request] = []
        self.errors: list[str] = []
        page.on("request", self._request_seen)
        page.on("pageerror", lambda error: self.errors.append(str(error)))

    def _request_seen(self, request: Request) -> None:
        if urlsplit(request.url).path == "/crm-events":
            self.stream_requests.append(request)

    def login(self, username: str = STAFF, password: str = STAFF_PASSWORD) -> None:
        self.page.goto("/admin/login/?next=/admin/")
        self.page.fill("#id_username", username)
        self.page.fill("#id_password", password)
        self.page.click("input[type=submit]")

    def open(self, query: str = "") -> None:
        self.page.goto(VIEWER + query)
        self.expect_state("live")

    def expect_state(self, state: str, timeout: int = WAIT_MS) -> None:
        expect(self.page.locator("#viewer-status")).to_have_attribute("data-state", state, timeout=timeout)

    def expect_rows(self, count: int, timeout: int = WAIT_MS) -> None:
        expect(self.page.locator("#viewer-rows tr:not([hidden])")).to_have_count(count, timeout=timeout)

    def expect_text(self, element_id: str, text: str, timeout: int = WAIT_MS) -> None:
        expect(self.page.locator(f"#{element_id}")).to_have_text(text, timeout=timeout)

    def positions(self) -> list[tuple[int, int]]:
        """(partition, offset) of the visible rows, top to bottom."""
        found = self.page.eval_on_selector_all(
            "#viewer-rows tr:not([hidden])", "rows => rows.map(r => r.dataset.position)"
        )
        return [tuple(int(part) for part in p.split("/")[1:]) for p in found]

    def kinds(self) -> list[str]:
        return self.page.eval_on_selector_all(
            "#viewer-rows tr:not([hidden])", "rows => rows.map(r => r.dataset.kind)"
        )

    def stream_queries(self) -> list[dict[str, list[str]]]:
        return [parse_qs(urlsplit(r.url).query, keep_blank_values=True) for r in self.stream_requests]

    def row(self, partition: int, offset: int):
        return self.page.locator(f'#viewer-rows tr[data-position$="/{partition}/{offset}"]')


@pytest.fixture
def viewer(browser: Browser, service: Service) -> Iterator[ViewerPage]:
    context = browser.new_context(
        base_url=service.base_url, viewport={"width": 1440, "height": 900}, accept_downloads=True,
    )
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=service.base_url)
    tab = ViewerPage(context.new_page())
    yield tab
    context.close()
    assert tab.errors == [], f"JavaScript errors on the page: {tab.errors}"


def events_produce(
    bootstrap: str, topic: str, types: list[str], *, first: int = 0, partition: int | None = None,
    size: int = 0, extra: dict | None = None,
) -> list[tuple[int, int]]:
    """One JSON event per type, `seq` counting from `first`; returns (partition, offset) of each."""
    values, keys = [], []
    for i, event_type in enumerate(types, start=first):
        value = {"type": event_type, "seq": i, **(extra or {})}
        if size:
            value["blob"] = "x" * size
        values.append(json.dumps(value).encode())
        keys.append(f"{event_type.split('.')[0]}-{i}".encode())
    partitions = [partition if partition is not None else i % 3 for i in range(len(types))]
    with ThreadPoolExecutor(1) as thread:  # see `browser`: not on Playwright's thread
        sending = produce(bootstrap, topic, values, keys=keys, partitions=partitions)
        return thread.submit(asyncio.run, sending).result()


def newest_first_per_partition(positions: list[tuple[int, int]]) -> bool:
    for partition in {p for p, _ in positions}:
        offsets = [o for p, o in positions if p == partition]
        if offsets != sorted(offsets, reverse=True):
            return False
    return True


# --- tests --------------------------------------------------------------------------------


def test_anonymous_is_sent_to_login_and_only_staff_get_in(viewer, service):
    page = viewer.page
    page.goto(VIEWER)
    expect(page).to_have_url(re.compile(r"/admin/login/\?next=/admin/live-events/$"))
    assert viewer.stream_requests == []

    page.fill("#id_username", CLERK)
    page.fill("#id_password", CLERK_PASSWORD)
    page.click("input[type=submit]")
    expect(page.locator(".errornote")).to_contain_text("staff account")
    assert viewer.stream_requests == []

    page.fill("#id_username", STAFF)
    page.fill("#id_password", STAFF_PASSWORD)
    page.click("input[type=submit]")
    expect(page).to_have_url(re.compile(r"/admin/live-events/$"))
    viewer.expect_state("live")
    expect(page.locator("#site-name")).to_be_visible()  # the admin's header, from base_site.html


def test_staff_watch_events_live_pause_resume_open_export_clear(viewer, service, kafka, topic):
    page = viewer.page
    viewer.login()
    page.click("text=Live event viewer")  # the link on the admin index
    expect(page).to_have_url(re.compile(r"/admin/live-events/$"))
    viewer.expect_state("live")
    assert viewer.stream_queries() == [{}]  # nothing set, nothing sent

    types = ["deal.created", "ticket.opened", "contact.subscribed", "deal.won"] * 3
    produced = events_produce(kafka.bootstrap, topic, types)
    viewer.expect_rows(12)
    # The rate is counted per second: the burst shows up in it within a second, for a second.
    expect(page.locator("#viewer-rate")).not_to_have_text("0.0", timeout=5_000)
    assert sorted(viewer.positions()) == sorted(produced)
    assert newest_first_per_partition(viewer.positions())
    viewer.expect_text("viewer-total", "12")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "viewer-live.png"))

    # Pause: the table stays as it is while the waiting counter counts what arrives.
    page.click("#viewer-pause")
    expect(page.locator("#viewer-pause")).to_have_text("Resume")
    frozen = viewer.positions()
    more = events_produce(kafka.bootstrap, topic, ["deal.updated"] * 8, first=12)
    viewer.expect_text("viewer-waiting", "8")
    viewer.expect_text("viewer-total", "20")
    assert viewer.positions() == frozen

    # Resume: everything that waited is shown, newest on top.
    page.click("#viewer-pause")
    viewer.expect_rows(20)
    assert sorted(viewer.positions()) == sorted(produced + more)
    assert newest_first_per_partition(viewer.positions())
    expect(page.locator("#viewer-waiting-box")).to_be_hidden()

    # A row opens as pretty-printed JSON, and the copy button copies it.
    partition, offset = produced[1]
    viewer.row(partition, offset).click()
    detail = page.locator("#viewer-detail")
    expect(detail).to_be_visible()
    text = page.locator("#viewer-detail-json").text_content()
    event = json.loads(text)
    assert text == json.dumps(event, indent=2, ensure_ascii=False)
    assert (event["kind"], event["topic"], event["partition"], event["offset"]) == (
        "domain_event", topic, partition, offset,
    )
    assert (event["type"], event["key"], event["value"]) == (
        "ticket.opened", "ticket-1", {"type": "ticket.opened", "seq": 1},
    )
    page.screenshot(path=str(ARTIFACTS / "viewer-detail.png"))
    page.click("#viewer-detail-copy")
    expect(page.locator("#viewer-detail-copy")).to_have_text("Copied")
    assert json.loads(page.evaluate("navigator.clipboard.readText()")) == event
    page.click("#viewer-detail-close")
    expect(detail).to_be_hidden()

    # Free-text search narrows what is on screen at once; export takes what is shown.
    page.fill("#viewer-search", "ticket-")
    viewer.expect_rows(3)
    assert set(viewer.kinds()) == {"ticket.opened"}
    with page.expect_download() as download_info:
        page.click("#viewer-export")
    lines = Path(download_info.value.path()).read_text().splitlines()
    exported = [json.loads(line) for line in lines]
    assert [(e["partition"], e["offset"]) for e in exported] == viewer.positions()[::-1]
    assert {e["type"] for e in exported} == {"ticket.opened"}
    page.fill("#viewer-search", "")
    viewer.expect_rows(20)

    # Clear empties the table; the stream goes on.
    page.click("#viewer-clear")
    viewer.expect_rows(0)
    last = events_produce(kafka.bootstrap, topic, ["deal.lost"], first=20)
    viewer.expect_rows(1)
    assert viewer.positions() == last
    viewer.expect_text("viewer-total", "21")


def test_kind_filter_reopens_the_stream_with_the_parameter_and_shows_only_matching_rows(
    viewer, service, kafka, topic
):
    page = viewer.page
    viewer.login()
    viewer.open()
    page.fill("#viewer-filters [name=kind]", "deal")
    page.click("#viewer-apply")
    expect(page).to_have_url(re.compile(r"/admin/live-events/\?kind=deal$"))
    viewer.expect_state("live")
    assert viewer.stream_queries() == [{}, {"kind": ["deal"]}]

    types = ["deal.created", "ticket.opened", "dealer.signed", "deal", "contact.subscribed",
             "deal.stage.changed", "ticket.closed", "deal.won"]
    produced = events_produce(kafka.bootstrap, topic, types, partition=0)
    deals = [position for position, t in zip(produced, types, strict=True) if t.split(".")[0] == "deal"]
    # All on one partition, so when the last deal is on screen every event has been seen.
    expect(viewer.row(*produced[-1])).to_have_count(1, timeout=WAIT_MS)
    assert viewer.positions() == deals[::-1]
    assert viewer.kinds() == ["deal.won", "deal.stage.changed", "deal", "deal.created"]

    # The filters live in the page's URL: a reload opens the same filtered stream.
    page.reload()
    viewer.expect_state("live")
    expect(page.locator("#viewer-filters [name=kind]")).to_have_value("deal")
    assert viewer.stream_queries()[-1] == {"kind": ["deal"]}

    # Every server-side filter goes out as its own repeatable parameter, empty ones not at all.
    page.fill("#viewer-filters [name=kind]", "deal, ticket,")
    page.fill("#viewer-filters [name=key]", "deal-9")
    page.fill("#viewer-filters [name=partition]", "0")
    page.fill("#viewer-filters [name=where]", "stage:won\nregion:eu")
    page.click("#viewer-apply")
    viewer.expect_state("live")
    assert viewer.stream_queries()[-1] == {
        "kind": ["deal", "ticket"], "key": ["deal-9"], "partition": ["0"],
        "where": ["stage:won", "region:eu"],
    }
    extra = {"stage": "won", "region": "eu"}
    matching = events_produce(kafka.bootstrap, topic, ["deal.won"], first=9, partition=0, extra=extra)
    expect(viewer.row(*matching[0])).to_have_count(1, timeout=WAIT_MS)
    assert viewer.positions() == matching


def test_start_positions_earliest_and_since(browser, service, kafka, topic):
    context = browser.new_context(base_url=service.base_url, timezone_id="UTC")
    try:
        viewer = ViewerPage(context.new_page())
        page = viewer.page
        earlier = events_produce(kafka.bootstrap, topic, ["deal.created"] * 4, partition=0)
        # The next whole second: everything before it is `earlier`, everything after is `later`.
        boundary = int(time.time()) + 1
        wait_until(lambda: time.time() >= boundary, timeout=3, what="the next second")
        later = events_produce(kafka.bootstrap, topic, ["deal.won"] * 3, first=4, partition=0)
        viewer.login()
        viewer.open()
        assert viewer.positions() == []  # live: only what comes next

        page.select_option("#viewer-from", "earliest")
        page.click("#viewer-apply")
        viewer.expect_rows(7)
        assert viewer.positions() == (earlier + later)[::-1]
        assert viewer.stream_queries()[-1] == {"from": ["earliest"]}

        page.select_option("#viewer-from", "since")
        since = datetime.fromtimestamp(boundary, UTC).strftime("%Y-%m-%dT%H:%M:%S")
        page.fill("#viewer-since", since)
        page.click("#viewer-apply")
        viewer.expect_rows(3)
        assert viewer.positions() == later[::-1]
        assert viewer.stream_queries()[-1] == {"since": [str(boundary * 1000)]}
        assert viewer.errors == []
    finally:
        context.close()


def test_a_stream_cut_loses_no_rows(viewer, service, stack, kafka, topic):
    """Daphne is stopped and started again on the same port while events keep coming."""
    viewer.login()
    viewer.open()
    before = events_produce(kafka.bootstrap, topic, ["deal.created"] * 9)
    viewer.expect_rows(9)

    service.daphne.stop()
    viewer.expect_state("reconnecting")
    during = events_produce(kafka.bootstrap, topic, ["deal.updated"] * 9, first=9)
    restarted = daphne_start(stack.env, service.port, stack.log_dir, name="daphne-restarted")
    stack.processes.append(restarted)
    viewer.expect_state("live")
    after = events_produce(kafka.bootstrap, topic, ["deal.won"] * 9, first=18)

    viewer.expect_rows(27)
    assert sorted(viewer.positions()) == sorted(before + during + after)
    assert len(set(viewer.positions())) == 27
    viewer.expect_text("viewer-total", "27")
    # The browser came back with the id of the last frame it had: the server resumed from it.
    resumed = viewer.stream_requests[-1]
    assert resumed.all_headers().get("last-event-id") or viewer.stream_queries()[-1]["last_event_id"]


def test_large_values_are_cut_in_the_table_and_shown_whole_on_demand(
    viewer, service, stack, kafka, topic
):
    page = viewer.page
    viewer.login()
    viewer.open()
    small = events_produce(kafka.bootstrap, topic, ["deal.updated"] * 3, partition=1)
    large = events_produce(kafka.bootstrap, topic, ["deal.huge"], first=3, partition=1, size=900_000)
    expect(viewer.row(*large[0])).to_have_count(1, timeout=WAIT_MS)
    viewer.expect_rows(4)
    assert viewer.positions() == (small + large)[::-1]

    row_text = viewer.row(*large[0]).locator("td").last.text_content()
    assert len(row_text) < 300 and re.search(r"… +\[879\.\d KB\]$", row_text), row_text
    # The page stays responsive: a round trip to its main thread is quick.
    assert page.evaluate("() => { const t = performance.now(); return performance.now() - t; }") < 50

    viewer.row(*large[0]).click()
    pre = page.locator("#viewer-detail-json")
    assert len(pre.text_content()) < 2_000
    assert "the value is shown on demand" in pre.text_content()
    page.click("#viewer-detail-whole")
    expect(page.locator("#viewer-detail-whole")).to_be_hidden()
    whole = json.loads(pre.text_content())
    assert whole["value"]["blob"] == "x" * 900_000
    page.click("#viewer-detail-close")


@pytest.mark.viewer_env(SSE_AUTH_MODE="session")
def test_the_viewer_streams_with_session_auth_on_the_stream(viewer, viewer_env, kafka, topic):
    """With SSE_AUTH_MODE=session the page's EventSource is let in by the staff login's cookie
    (and staff read under a grant: test_grants_admin.py)."""
    grant_give(viewer_env, STAFF, {"topic": [topic]})
    viewer.login()
    viewer.open()
    produced = events_produce(kafka.bootstrap, topic, ["deal.won"] * 3, partition=0)
    viewer.expect_rows(3)
    assert viewer.positions() == produced[::-1]
    assert viewer.errors == []


BUFFER_ROWS = 5


@pytest.mark.viewer_env(VIEWER_BUFFER_ROWS=str(BUFFER_ROWS))
def test_the_row_buffer_is_bounded(viewer, kafka, topic):
    viewer.login()
    viewer.open()
    expect(viewer.page.locator("#viewer-buffer")).to_have_text(str(BUFFER_ROWS))
    produced = events_produce(kafka.bootstrap, topic, ["deal.updated"] * 12, partition=2)
    viewer.expect_text("viewer-total", "12")
    viewer.expect_rows(BUFFER_ROWS)
    assert viewer.positions() == produced[::-1][:BUFFER_ROWS]
    assert viewer.errors == []


def test_a_refused_stream_shows_the_servers_reason(viewer, service):
    page = viewer.page
    viewer.login()
    viewer.open()
    page.fill("#viewer-filters [name=partition]", "x")
    page.click("#viewer-apply")
    viewer.expect_state("error")
    reason = INTEGER_INVALID.format(name="partition", maximum=PARTITION_MAX, text="x")
    expect(page.locator("#viewer-status")).to_have_text(f"error: HTTP 400: {reason}")
    assert viewer.stream_queries()[-1] == {"partition": ["x"]}


def test_stream_urls_carry_only_what_was_set(viewer, service):
    """events.js, imported by the page itself: the query each form state turns into."""
    viewer.login()
    viewer.open()
    cases = viewer.page.evaluate(
        """async () => {
          const m = await import("/static/crm_events/events.js");
          const base = "http://h/p/crm-events";
          const form = (f) => ({from: "latest", since: "", kind: "", topic: "", key: "",
                                partition: "", where: "", ...f});
          const url = (f, last) => m.streamUrlBuild(base, m.queryBuild(form(f)), last);
          return [
            url({}),
            url({kind: " , "}),
            url({from: "earliest", topic: "a,b", key: "k"}),
            url({from: "since", since: "2026-01-02T03:04:05"}),
            url({from: "since", since: ""}),
            url({from: "earliest", kind: "deal"}, "tok-1"),
            m.kindMatches("deal.won", ["deal"]), m.kindMatches("dealer", ["deal"]),
            m.jsonSummary({a: "x".repeat(1000)}, 20),
            new Date("2026-01-02T03:04:05").getTime(),
          ];
        }"""
    )
    *urls, deal, dealer, summary, since_ms = cases
    assert urls == [
        "http://h/p/crm-events",
        "http://h/p/crm-events",
        "http://h/p/crm-events?topic=a&topic=b&key=k&from=earliest",
        f"http://h/p/crm-events?since={since_ms}",
        "http://h/p/crm-events",
        "http://h/p/crm-events?kind=deal&last_event_id=tok-1",
    ]
    assert (deal, dealer) == (True, False)
    assert summary == '{"a":"' + 'x' * 13 + '…'  # 20 characters in all


def sse_body(*frames: tuple[str | None, str | None, dict], retry: int) -> str:
    """(event, id, data) frames as a text/event-stream body."""
    lines = [f"retry: {retry}\n\n"]
    for name, event_id, data in frames:
        head = (f"event: {name}\n" if name else "") + (f"id: {event_id}\n" if event_id else "")
        lines.append(f"{head}data: {json.dumps(data)}\n\n")
    return "".join(lines)


def domain(offset: int) -> dict:
    return {"kind": "domain_event", "topic": "t", "partition": 0, "offset": offset, "timestamp": 0,
            "key": f"k{offset}", "headers": {}, "type": "deal.won", "value": {"n": offset},
            "value_format": "json"}


def test_gap_reconnect_and_refused_streams_resume_from_the_last_id(viewer, service):
    """The client side of resume, staged by the browser: the server's answers are canned.

    The stream shows a gap, then the server ends it with a `reconnect` frame; the
    browser's own reconnect is refused with a 503 (and so is the page's probe of why),
    so the page shows the reason and opens the stream again with `last_event_id`.
    """
    page = viewer.page
    viewer.login()
    viewer.open()
    connected = {"kind": "connected", "topic": "t", "topics": ["t"], "group": "g"}
    gap = {"kind": "gap", "topic": "t", "partitions": {"0": [2, 5]}}
    first = sse_body(
        (None, None, connected), (None, "tok-1", domain(0)), (None, "tok-2", domain(1)),
        # The gap as a named event and as a plain frame: one notice, one row.
        ("gap", "tok-2", gap), (None, "tok-2", gap), (None, "tok-6", domain(6)),
        (None, "tok-7", {"kind": "reconnect", "reason": "draining"}),
        retry=100,
    )
    resumed = sse_body((None, None, connected), (None, "tok-8", domain(7)), retry=600_000)
    urls: list[str] = []

    def staged(route):
        urls.append(route.request.url)
        if len(urls) == 1:
            route.fulfill(status=200, content_type="text/event-stream", body=first)
        elif len(urls) <= 3:  # the browser's reconnect, then the page asking why it failed
            route.fulfill(status=503, content_type="application/json", body='{"error": "draining"}')
        else:
            route.fulfill(status=200, content_type="text/event-stream", body=resumed)

    page.route(re.compile(r".*/crm-events(\?.*)?$"), staged)
    page.click("#viewer-apply")
    expect(page.locator("#viewer-status")).to_have_text(
        "error: HTTP 503: draining; retrying in 1 s", timeout=WAIT_MS
    )
    viewer.expect_rows(5)  # (each canned body ends at once, so "live" does not last)
    assert [parse_qs(urlsplit(url).query) for url in urls[:4]] == [
        {}, {}, {}, {"last_event_id": ["tok-7"]},
    ]
    assert viewer.kinds() == ["deal.won", "deal.won", "gap", "deal.won", "deal.won"]
    assert page.eval_on_selector_all(
        "#viewer-rows tr", "rows => rows.map(r => r.dataset.position)"
    ) == ["t/0/7", "t/0/6", "t//", "t/0/1", "t/0/0"]
    expect(page.locator("#viewer-notice")).to_contain_text("History was lost before this point")
    viewer.expect_text("viewer-total", "4")


# --- chart, kind counts, partitions, offsets, copy as, highlighting (issue 13, part 4) ---------


def chart_counts(page: Page) -> dict[str, int]:
    """Events per kind in the chart's bars, summed over its seconds."""
    return page.evaluate(
        """() => { const c = {}; for (const r of document.querySelectorAll('#viewer-chart rect'))
                     c[r.dataset.kind] = (c[r.dataset.kind] || 0) + Number(r.dataset.count); return c; }"""
    )


def kind_button(page: Page, kind: str):
    return page.locator(f'#viewer-kinds button[data-kind="{kind}"]')


def test_chart_kind_counts_filter_partitions_panel_and_no_failed_request(viewer, service, kafka, topic):
    page = viewer.page
    failed: list[str] = []
    page.on("response", lambda r: failed.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    page.on("console", lambda m: failed.append(m.text) if m.type == "error" else None)
    viewer.login()
    viewer.open()
    first = events_produce(kafka.bootstrap, topic, ["deal.created", "lead.new", "deal.won"], partition=0)
    more = events_produce(kafka.bootstrap, topic, ["ticket.opened", "lead.won", "deal.lost"], first=3)
    viewer.expect_rows(6)
    expect(kind_button(page, "deal").locator(".viewer-kind-count")).to_have_text("3", timeout=WAIT_MS)
    expect(kind_button(page, "lead").locator(".viewer-kind-count")).to_have_text("2")
    assert chart_counts(page) == {"deal": 3, "lead": 2, "ticket": 1}

    # The partitions panel: the last offset of each partition, and the consumer caught up.
    last = {}
    for partition, offset in first + more:
        last[partition] = max(offset, last.get(partition, -1))
    for partition in range(3):
        row = page.locator(f'#viewer-partitions-rows tr[data-position="{topic}/{partition}"]')
        expect(row).to_have_attribute("data-last-offset", str(last.get(partition, "")), timeout=WAIT_MS)
        expect(row).to_have_attribute("data-lag", "0", timeout=WAIT_MS)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "viewer.png"), full_page=True)

    # One click on a kind: the stream reopens with kind=<that>; again: every kind.
    kind_button(page, "lead").click()
    viewer.expect_state("live")
    assert viewer.stream_queries()[-1] == {"kind": ["lead"]}
    expect(page.locator("#viewer-filters [name=kind]")).to_have_value("lead")
    mixed = ["deal.x", "lead.y", "ticket.z", "lead.w"]
    later = events_produce(kafka.bootstrap, topic, mixed, first=6, partition=1)
    expect(viewer.row(*later[-1])).to_have_count(1, timeout=WAIT_MS)
    assert viewer.kinds() == ["lead.w", "lead.y"]
    expect(kind_button(page, "lead")).to_have_attribute("aria-pressed", "true", timeout=5_000)
    kind_button(page, "lead").click()
    viewer.expect_state("live")
    assert viewer.stream_queries()[-1] == {}
    expect(page.locator("#viewer-filters [name=kind]")).to_have_value("")

    # No request of the page failed (the icon included), nothing was logged as an error.
    icon = page.request.get("/favicon.ico")
    assert icon.status == 200 and icon.headers["content-type"].startswith("image/svg+xml")
    assert page.locator('link[rel="icon"]').get_attribute("href") == "/static/crm_events/favicon.svg"
    assert failed == []


def test_offsets_input_and_copy_as_commands_that_receive_the_same_stream(
    viewer, service, kafka, topic, tmp_path
):
    page = viewer.page
    p0 = events_produce(kafka.bootstrap, topic, ["deal.a"] * 5, partition=0)
    p1 = events_produce(kafka.bootstrap, topic, ["deal.b"] * 3, first=5, partition=1)
    events_produce(kafka.bootstrap, topic, ["deal.c"] * 2, first=8, partition=2)
    viewer.login()
    viewer.open()
    page.fill("#viewer-offset", "0:3, 1:1")
    page.click("#viewer-apply")
    viewer.expect_state("live")
    assert viewer.stream_queries()[-1] == {"offset": ["0:3", "1:1"]}
    wanted = p0[3:] + p1[1:]
    viewer.expect_rows(len(wanted))
    assert sorted(viewer.positions()) == sorted(wanted)
    # The first event shown per partition (the bottom row) is at the offset asked for.
    assert [o for p, o in viewer.positions() if p == 0][-1] == 3
    assert [o for p, o in viewer.positions() if p == 1][-1] == 1
    stream_url = viewer.stream_requests[-1].url

    snippets = {}
    for kind in ("curl", "eventsource", "python"):
        page.click("#viewer-copy summary")
        page.click(f'#viewer-copy-menu button[data-copy="{kind}"]')
        expect(page.locator("#viewer-copy-note")).to_have_attribute("data-copied", kind)
        snippets[kind] = page.evaluate("navigator.clipboard.readText()")
        assert stream_url in snippets[kind], snippets[kind]

    def positions_of(data_lines: list[str]) -> list[tuple[int, int]]:
        events = [json.loads(line) for line in data_lines if line.startswith("{")]  # not heartbeats
        return sorted((e["partition"], e["offset"]) for e in events if e.get("kind") == "domain_event")

    curl = subprocess.run([*shlex.split(snippets["curl"]), "--max-time", "6"], capture_output=True, text=True)
    assert curl.returncode == 28, curl.stderr  # the timeout ended it
    curl_data = [line[6:] for line in curl.stdout.splitlines() if line.startswith("data: ")]
    assert positions_of(curl_data) == sorted(wanted)

    script = tmp_path / "follow.py"
    script.write_text(snippets["python"])
    with pytest.raises(subprocess.TimeoutExpired) as ended:
        subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=8)
    out = ended.value.stdout or ""
    out = out.decode() if isinstance(out, bytes) else out
    assert positions_of([line.split(" ", 2)[-1] for line in out.splitlines()]) == sorted(wanted)

    # The snippet logs each frame: collected in the page, waited for by Playwright's own wait.
    other = page.context.new_page()
    other.goto("/healthz")
    other.evaluate(
        "(code) => { window.seen = []; console.log = (id, frame) => window.seen.push(frame); "
        "(0, eval)(code); }",
        snippets["eventsource"],
    )
    other.wait_for_function(f"window.seen.length >= {len(wanted) + 1}", timeout=WAIT_MS)  # + connected
    frames = other.evaluate("window.seen")
    shown = [(f["partition"], f["offset"]) for f in frames if f.get("kind") == "domain_event"]
    assert sorted(shown) == sorted(wanted)
    other.close()


HOSTILE = ['<script>window.__pwned = 1</script>', '"><img src=x onerror="window.__pwned = 2">']


def test_hostile_events_are_shown_literally_with_highlighting_and_headers(viewer, service, kafka, topic):
    page = viewer.page
    viewer.login()
    viewer.open()
    value = {"type": f'{HOSTILE[1]}.x', "html": HOSTILE[0], "n": 7, "ok": True, "none": None}
    headers = [
        ("trace-id", b"abc-1"), ("x-evil", HOSTILE[0].encode()), (HOSTILE[1], b"v"), ("trace-id", b"abc-2"),
    ]
    with ThreadPoolExecutor(1) as thread:
        sending = produce(kafka.bootstrap, topic, [json.dumps(value).encode()], keys=[HOSTILE[1].encode()],
                          partitions=[0], headers=[headers])
        (position,) = thread.submit(asyncio.run, sending).result()
    expect(viewer.row(*position)).to_have_count(1, timeout=WAIT_MS)
    viewer.row(*position).click()
    pre = page.locator("#viewer-detail-json")
    event = json.loads(pre.text_content())
    assert event["value"] == value and event["key"] == HOSTILE[1]
    assert pre.locator(".json-string", has_text="<script>").count() == 2  # the value and a header
    assert "7" in pre.locator(".json-number").all_text_contents()
    assert pre.locator(".json-boolean").all_text_contents() == ["true"]
    assert pre.locator(".json-key").first.text_content() == '"kind"'
    rows = page.eval_on_selector_all(
        "#viewer-detail-headers-rows tr", "rows => rows.map(r => [...r.cells].map(c => c.textContent))"
    )
    assert rows == [["trace-id", "abc-1"], ["trace-id", "abc-2"], ["x-evil", HOSTILE[0]], [HOSTILE[1], "v"]]
    expect(page.locator("#viewer-detail-headers-count")).to_have_text("4")
    kind = HOSTILE[1].split(".")[0]  # the type's prefix before its first dot
    expect(page.locator("#viewer-kinds .viewer-kind-name").first).to_have_text(kind, timeout=5_000)
    assert page.evaluate("window.__pwned") is None
    assert page.evaluate("document.querySelectorAll('#content-main img, #content-main script').length") == 0


def test_binary_keys_and_none_empty_and_binary_header_values_are_shown_apart(viewer, service, kafka, topic):
    """Issue 18: a header of no value, an empty one, binary bytes and text that looks like the
    old `base64:` marker each show as what they are; a binary key shows its base64, marked."""
    page = viewer.page
    viewer.login()
    viewer.open()
    headers = [("n", None), ("e", b""), ("b", b"\xff\xfe"), ("t", b"base64://4="), ("b", b"ok")]
    with ThreadPoolExecutor(1) as thread:
        sending = produce(kafka.bootstrap, topic, [b'{"type":"deal.won"}'], keys=[b"\xff\xfe"],
                          partitions=[0], headers=[headers])
        (position,) = thread.submit(asyncio.run, sending).result()
    expect(viewer.row(*position)).to_have_count(1, timeout=WAIT_MS)
    key_cell = viewer.row(*position).locator("td").nth(5)
    assert (key_cell.text_content(), key_cell.get_attribute("data-bytes")) == ("//4=", "binary")
    viewer.row(*position).click()
    event = json.loads(page.locator("#viewer-detail-json").text_content())
    assert event["key"] == {"base64": "//4="}
    assert event["headers"] == {"n": None, "e": "", "b": [{"base64": "//4="}, "ok"], "t": "base64://4="}
    rows = page.eval_on_selector_all(
        "#viewer-detail-headers-rows tr",
        "rows => rows.map(r => [r.cells[0].textContent, r.cells[1].textContent, r.cells[1].dataset.bytes])",
    )
    assert rows == [["n", "", "null"], ["e", "", "text"], ["b", "//4=", "binary"], ["b", "ok", "text"],
                    ["t", "base64://4=", "text"]]
    marks = page.eval_on_selector_all(
        "#viewer-detail-headers-rows td[data-bytes]",
        "cells => cells.map(c => getComputedStyle(c, '::before').content)",
    )
    assert marks == ['"null"', "none", '"base64"', "none", "none"]


@pytest.fixture
def registry_env(env: dict[str, str], apicurio: ApicurioServer) -> ApicurioServer:
    """The registry in the service's environment (asked for before `viewer`, which starts it)."""
    env["SCHEMA_REGISTRY_URL"] = apicurio.url
    return apicurio


def test_registry_values_are_shown_decoded_with_their_schema_id(registry_env, viewer, kafka, topic):
    apicurio = registry_env
    viewer.login()
    viewer.open()
    producer = ForeignProducer(apicurio.url)
    avro, unknown = producer.avro(f"{topic}-viewer", 1, 0), b"\x00\x00\x0f\x42\x40?"
    confluent_produce(kafka.bootstrap, topic, [avro, unknown], partition=2)
    expect(viewer.row(2, 1)).to_have_count(1, timeout=WAIT_MS)
    schema_id = int.from_bytes(avro[1:5], "big")
    cells = [viewer.row(2, offset).locator("td").last.text_content() for offset in (0, 1)]
    assert cells[0].startswith(f"avro #{schema_id} ") and '"amount":"12.30"' in cells[0], cells[0]
    assert cells[1] == (
        "(registry_undecoded #1000000 undecoded: unknown: the registry does not know schema id 1000000)"
    )
    viewer.row(2, 0).click()
    event = json.loads(viewer.page.locator("#viewer-detail-json").text_content())
    assert event["value"] == avro_deal_json(1, 0) and event["value_schema"]["id"] == schema_id
