"""Session users' grants, administered in the Django admin in Chromium, on a real Daphne with real
Kafka and Redis: a group's grant is what its member's viewer shows; a grant that shrinks and a
logout end the member's open streams with the documented `reconnect` frame, whose id resumes
with nothing lost; the audit lines say who streamed what."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import Browser, expect

from crm_events.access.grants import GRANT_VALUES_INVALID, grant_parse
from crm_events.access.session_grants import GRANT_NONE
from crm_events.core.filter_query import MAX_VALUE_CHARS, MAX_VALUES
from crm_events.ops.viewer import ACCESS_GRANTED, ACCESS_NONE
from tests.integration.test_viewer import (  # noqa: F401  (fixtures, used by name)
    STAFF,
    VIEWER,
    Service,
    ViewerPage,
    browser,
    django_run,
    events_produce,
    grant_give,
    service,
    viewer_db_template,
    viewer_env,
)
from tests.support.processes import wait_until

pytestmark = pytest.mark.integration

ROOT_USER, ROOT_PASSWORD = "root", "root-password-1"
GROUP = "sales"
ADD = "/admin/crm_events/accessgrant/add/"


class RawStream(threading.Thread):
    """`GET /crm-events` with a browser's session cookie, read to its end in a thread of its own
    (Playwright's sync API owns this thread's event loop). Frames as dicts: id, event, data."""

    def __init__(self, base_url: str, session: str, last_event_id: str | None = None) -> None:
        super().__init__(daemon=True)
        self.base_url, self.session, self.last_event_id = base_url, session, last_event_id
        self.status: int | None = None
        self.frames: list[dict[str, str]] = []
        self.ended = threading.Event()
        self.start()

    def run(self) -> None:
        headers = {"Last-Event-ID": self.last_event_id} if self.last_event_id else {}
        try:
            with httpx.Client(base_url=self.base_url, cookies={"sessionid": self.session},
                              timeout=httpx.Timeout(10, read=60)) as client, \
                    client.stream("GET", "/crm-events", headers=headers) as answer:
                self.status = answer.status_code
                frame: dict[str, str] = {}
                for line in answer.iter_lines():
                    if not line:
                        if "data" in frame:
                            self.frames.append(frame)
                        frame = {}
                    elif not line.startswith(":"):
                        name, _, value = line.partition(":")
                        frame[name] = value.removeprefix(" ")
        finally:
            self.ended.set()

    def payloads(self) -> list[dict]:
        return [json.loads(f["data"]) for f in list(self.frames)]

    def events(self) -> list[tuple[int, int, str]]:
        events = [p for p in self.payloads() if p["kind"] == "domain_event"]
        return [(p["partition"], p["offset"], p["type"]) for p in events]

    def wait_connected(self) -> None:
        wait_until(lambda: any(p["kind"] == "connected" for p in self.payloads()) or self.ended.is_set(),
                   timeout=30, what="the connected frame")
        assert self.status == 200 and not self.ended.is_set(), self.frames

    def wait_end(self) -> dict[str, str]:
        """The stream's last frame, once the server ended it."""
        assert self.ended.wait(30), "the stream did not end"
        return self.frames[-1]


@pytest.fixture
def admin_and_member(  # noqa: F811
    browser: Browser, service: Service, viewer_env: dict[str, str]  # noqa: F811
) -> Iterator[tuple[ViewerPage, ViewerPage]]:
    """A superuser's tab and a staff member's of group `sales` (with no grant yet), both logged in."""
    django_run(viewer_env, (
        "from django.contrib.auth.models import Group, User; "
        f"User.objects.create_superuser({ROOT_USER!r}, password={ROOT_PASSWORD!r}); "
        f"User.objects.get(username={STAFF!r}).groups.add(Group.objects.create(name={GROUP!r}))"
    ))
    contexts = [browser.new_context(base_url=service.base_url, viewport={"width": 1440, "height": 900})
                for _ in range(2)]
    admin, member = (ViewerPage(context.new_page()) for context in contexts)
    admin.login(ROOT_USER, ROOT_PASSWORD)
    member.login()
    expect(member.page.locator("#logout-form")).to_be_attached()
    yield admin, member
    for context in contexts:
        context.close()
    assert admin.errors == member.errors == []


def session_cookie(tab: ViewerPage) -> str:
    return next(c["value"] for c in tab.page.context.cookies() if c["name"] == "sessionid")


def grant_save(admin: ViewerPage, grant: object, *, change: bool = False) -> None:
    page = admin.page
    if change:
        page.goto("/admin/crm_events/accessgrant/")
        page.click(f"text=group:{GROUP}")
    else:
        page.goto(ADD)
        page.click(".field-group .select2-selection")  # the admin's autocomplete widget
        page.fill(".select2-search__field", GROUP)
        page.click(f".select2-results__option:text-is('{GROUP}')")
        expect(page.locator("#id_group option:checked")).to_have_text(GROUP)
    page.fill("#id_grant", json.dumps(grant))
    page.click("input[name=_save]")


def audit_lines(web: Service) -> list[dict]:
    lines = [line[line.index("{"):] for line in web.daphne.log_text().splitlines() if '"audit"' in line]
    return [json.loads(line) for line in lines]


@pytest.mark.viewer_env(SSE_AUTH_MODE="session", SSE_RETRY_MS="300", LOG_FORMAT="json")
def test_a_groups_grant_given_shrunk_and_a_logout(admin_and_member, service, kafka, topic):  # noqa: F811
    admin, member = admin_and_member

    # No grant: nothing, and the page says why.
    member.page.goto(VIEWER)
    expect(member.page.locator("#viewer-access")).to_have_text(ACCESS_NONE.format(refusal=GRANT_NONE))
    member.expect_state("error")
    expect(member.page.locator("#viewer-status")).to_have_text(f"error: HTTP 403: {GRANT_NONE}")

    # The admin's form refuses a grant that grants nothing, saying why under the field.
    grant_save(admin, {"topic": []})
    reason = GRANT_VALUES_INVALID.format(name="topic", most=MAX_VALUES, longest=MAX_VALUE_CHARS)
    expect(admin.page.locator(".field-grant .errorlist")).to_have_text(reason)
    granted = {"topic": [topic], "kind": ["deal"], "where": ["tenant_id:acme"]}
    grant_save(admin, granted)
    expect(admin.page.locator(".messagelist .success")).to_be_visible()

    # The member's viewer shows exactly what the group's grant allows.
    member.open()
    shown = json.dumps(grant_parse(granted).as_object(), sort_keys=True)
    expect(member.page.locator("#viewer-access")).to_have_text(
        ACCESS_GRANTED.format(owner=f"group:{GROUP}", grant=shown)
    )
    def tenant_produce(first: int, tenant: str, types: list[str]) -> list[tuple[int, int]]:
        extra = {"tenant_id": tenant}
        return events_produce(kafka.bootstrap, topic, types, first=first, partition=0, extra=extra)

    acme = tenant_produce(0, "acme", ["deal.won", "ticket.opened"])
    beta = tenant_produce(2, "beta", ["deal.lost", "deal.won"])
    acme += tenant_produce(4, "acme", ["deal.lost", "contact.added"])
    member.expect_rows(2)
    assert member.positions() == [acme[2], acme[0]] and beta
    assert member.kinds() == ["deal.lost", "deal.won"]

    # Shrink it: the member's open streams end with `grants_changed` and their resume id.
    raw = RawStream(service.base_url, session_cookie(member))
    raw.wait_connected()
    grant_save(admin, {"topic": [topic], "kind": ["deal.lost"], "where": ["tenant_id:acme"]}, change=True)
    # (the same grant as `shrunk` below, in the order the admin typed it)
    expect(admin.page.locator(".messagelist .success")).to_be_visible()
    last = raw.wait_end()
    assert json.loads(last["data"]) == {"kind": "reconnect", "reason": "grants_changed"} and last["id"]
    assert raw.events() == []  # opened after the events: nothing of them

    # What comes meanwhile is not lost: the id resumes under the new grant, which the viewer follows too.
    tenant_produce(6, "beta", ["deal.lost"])
    more = tenant_produce(7, "acme", ["deal.won", "deal.lost"])
    resumed = RawStream(service.base_url, session_cookie(member), last_event_id=last["id"])
    resumed.wait_connected()
    wait_until(lambda: resumed.events(), timeout=30, what="the resumed event")
    member.expect_rows(3)
    assert member.positions()[0] == more[1] and member.kinds()[0] == "deal.lost"
    assert resumed.events() == [(*more[1], "deal.lost")]

    # Log out: the session's streams end with `logged_out`; the viewer is then refused.
    member.page.click("#logout-form button")
    last = resumed.wait_end()
    assert json.loads(last["data"]) == {"kind": "reconnect", "reason": "logged_out"} and last["id"]
    again = RawStream(service.base_url, session_cookie_or_old(member, resumed.session))
    assert again.ended.wait(30) and again.status == 401

    # The audit lines: who, under which grant, what they asked, how it ended, how many events.
    ends = [line for line in audit_lines(service) if line["audit"] == "stream_end"]
    revoked = [line for line in ends if line["reason"] in ("grants_changed", "logged_out")]
    assert {(line["reason"], line["resumed"]) for line in revoked} >= {("grants_changed", False),
                                                                        ("logged_out", True)}
    for line in revoked:
        assert (line["subject"], line["grant_rule"], line["grant_owner"]) == (
            f"user:{STAFF}", "group", f"group:{GROUP}"
        )
    logged_out = next(line for line in revoked if line["reason"] == "logged_out" and line["resumed"])
    assert logged_out["resume_id"] == resumed.last_event_id and logged_out["events"] == 1
    shrunk = {"kind": ["deal.lost"], "topic": [topic], "where": ["tenant_id:acme"]}
    assert json.loads(logged_out["grant"]) == shrunk
    assert json.loads(logged_out["filters"]) == {} and json.loads(logged_out["topics"]) == [topic]
    assert logged_out["started_at"] <= logged_out["ended_at"]


def session_cookie_or_old(tab: ViewerPage, old: str) -> str:
    """After a logout the browser may hold no session cookie: the old one is what a thief would send."""
    return next((c["value"] for c in tab.page.context.cookies() if c["name"] == "sessionid"), old)



@pytest.mark.viewer_env(SSE_AUTH_MODE="session")
def test_a_stream_ends_when_its_session_expires_and_resumes_after_a_new_login(
    admin_and_member, service, viewer_env, kafka, topic  # noqa: F811
):
    _, member = admin_and_member
    grant_give(viewer_env, STAFF, {"topic": [topic]})
    expiring = session_cookie(member)
    django_run(viewer_env, (
        "import datetime; from django.contrib.sessions.models import Session; "
        "from django.utils import timezone; "
        f"Session.objects.filter(session_key={expiring!r})"
        ".update(expire_date=timezone.now() + datetime.timedelta(seconds=6))"
    ))
    raw = RawStream(service.base_url, expiring)
    raw.wait_connected()
    produced = events_produce(kafka.bootstrap, topic, ["deal.won"] * 3, partition=0)
    last = raw.wait_end()
    assert json.loads(last["data"]) == {"kind": "reconnect", "reason": "session_expired"} and last["id"]
    refused = RawStream(service.base_url, expiring)
    assert refused.ended.wait(30) and refused.status == 401

    member.login()  # a fresh session resumes from the id: every event once, in order
    more = events_produce(kafka.bootstrap, topic, ["deal.lost"] * 2, first=3, partition=0)
    resumed = RawStream(service.base_url, session_cookie(member), last_event_id=last["id"])
    resumed.wait_connected()
    wanted = [(*p, "deal.won") for p in produced] + [(*p, "deal.lost") for p in more]
    wait_until(lambda: len(raw.events() + resumed.events()) >= len(wanted), timeout=30, what="the events")
    assert raw.events() + resumed.events() == wanted
