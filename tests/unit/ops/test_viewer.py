"""Who may open the live viewer, what the page hands its JS, and how its files are served."""

from __future__ import annotations

import json
import re
from html import unescape

import pytest
from django.contrib.auth.models import AnonymousUser, User
from django.test import AsyncClient, Client, override_settings
from django.urls import reverse, set_script_prefix

from crm_events.access.grant_store import AccessGrant
from crm_events.access.session_grants import GRANT_NONE
from crm_events.config import ViewerConfig
from crm_events.ops import viewer
from crm_events.ops.viewer import VIEWER_FORBIDDEN, viewer_access_allowed
from tests.unit.aetherlink.test_settings import ROOT, settings_load
from tests.unit.ops.test_viewer_partitions import hub_at

VIEWER = "/admin/live-events/"
PARTITIONS = "/admin/live-events/partitions"
PRIVATE = ViewerConfig(public=False, buffer_rows=1000)
PUBLIC = ViewerConfig(public=True, buffer_rows=1000)


def user(**fields) -> User:
    return User(username="u", **fields)


@pytest.mark.parametrize(
    ("who", "config", "allowed"),
    [
        (AnonymousUser(), PRIVATE, False),
        (user(is_active=True, is_staff=False), PRIVATE, False),
        (user(is_active=False, is_staff=True), PRIVATE, False),
        (user(is_active=True, is_staff=True), PRIVATE, True),
        (user(is_active=True, is_staff=True, is_superuser=True), PRIVATE, True),
        (AnonymousUser(), PUBLIC, True),
    ],
)
def test_access_rule(who, config, allowed):
    assert viewer_access_allowed(who, config=config) is allowed


def settings_json(html: str) -> dict:
    match = re.search(r'<script id="viewer-settings" type="application/json">(.*?)</script>', html)
    assert match, html
    return json.loads(match.group(1))


@pytest.fixture
def staff_client(db) -> Client:
    client = Client()
    client.force_login(User.objects.create_user("staff", password="pw", is_staff=True))
    return client


def test_anonymous_is_sent_to_the_admin_login(db):
    response = Client().get(VIEWER + "?kind=deal")
    assert response.status_code == 302
    assert response["Location"] == "/admin/login/?next=/admin/live-events/%3Fkind%3Ddeal"


def test_a_user_who_is_not_staff_is_sent_to_the_admin_login(db):
    client = Client()
    client.force_login(User.objects.create_user("clerk", password="pw"))
    response = client.get(VIEWER)
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/?next=")


def test_staff_get_the_page_inside_the_admin(staff_client):
    response = staff_client.get(VIEWER)
    assert response.status_code == 200
    assert [t.name for t in response.templates][:2] == ["crm_events/viewer.html", "admin/base_site.html"]
    html = response.content.decode()
    assert settings_json(html) == {
        "streamUrl": reverse("crm-events"),
        "topics": ["aetherlink.events"],
        "bufferRows": 1000,
        "partitionsUrl": PARTITIONS,
        "authMode": "none",
    }
    assert '<script type="module" src="/static/crm_events/viewer.js">' in html
    assert '<link rel="icon" href="/static/crm_events/favicon.svg" type="image/svg+xml">' in html
    assert 'href="/static/crm_events/viewer.css"' in html
    assert 'id="viewer-asyncapi" href="/asyncapi.yaml"' in html  # the stream's contract
    assert "no-cache" in response["Cache-Control"]


@override_settings(VIEWER_BUFFER_ROWS=250, KAFKA_TOPICS=["a", "b"])
def test_page_settings_follow_configuration(staff_client):
    found = settings_json(staff_client.get(VIEWER).content.decode())
    assert (found["bufferRows"], found["topics"]) == (250, ["a", "b"])


def test_urls_follow_the_proxy_sub_path(staff_client):
    # What Django's WSGI and ASGI handlers do for a request under SCRIPT_NAME / root_path;
    # the override drops Django's cached STATIC_URL, which takes the prefix on first use.
    set_script_prefix("/ops/crm/")
    try:
        with override_settings(STATIC_URL="static/"):
            response = staff_client.get(VIEWER)
    finally:
        set_script_prefix("/")
    html = response.content.decode()
    assert settings_json(html)["streamUrl"] == "/ops/crm/crm-events"
    assert settings_json(html)["partitionsUrl"] == "/ops/crm/admin/live-events/partitions"
    assert 'href="/ops/crm/asyncapi.yaml"' in html
    assert 'src="/ops/crm/static/crm_events/viewer.js"' in html


def test_the_admin_index_links_to_the_viewer(staff_client):
    html = staff_client.get("/admin/").content.decode()
    assert f'<a href="{VIEWER}">Live event viewer</a>' in html
    assert 'id="recent-actions-module"' in html  # the admin's own index is still there


@override_settings(VIEWER_PUBLIC=True, DEBUG=True)
def test_public_viewer_in_debug_needs_no_login(db):
    assert Client().get(VIEWER).status_code == 200


@override_settings(VIEWER_PUBLIC=True, DEBUG=False)
def test_public_viewer_is_ignored_without_debug(db):
    assert Client().get(VIEWER).status_code == 302


def test_public_viewer_without_debug_is_refused_at_start():
    result = settings_load(PYTHONPATH=str(ROOT), DJANGO_SECRET_KEY="k", VIEWER_PUBLIC="true")
    assert result.returncode != 0
    assert (
        "VIEWER_PUBLIC=true is for development only and needs DJANGO_DEBUG=true; "
        "unset it to require a staff login."
    ) in result.stderr


def test_public_viewer_with_debug_starts():
    result = settings_load(PYTHONPATH=str(ROOT), DJANGO_DEBUG="true", VIEWER_PUBLIC="true")
    assert result.returncode == 0, result.stderr


def test_buffer_rows_must_be_positive():
    result = settings_load(PYTHONPATH=str(ROOT), DJANGO_SECRET_KEY="k", VIEWER_BUFFER_ROWS="0")
    assert "VIEWER_BUFFER_ROWS must be a positive integer, got 0." in result.stderr


async def test_static_files_are_served_without_collectstatic():
    client = AsyncClient()
    script = await client.get("/static/crm_events/viewer.js")
    assert script.status_code == 200
    assert script["Content-Type"].startswith("text/javascript")
    assert b"new EventStream(" in script.content
    admin_css = await client.get("/static/admin/css/base.css")
    assert admin_css.status_code == 200
    assert (await client.get("/healthz")).status_code == 200  # other paths go on to the views
    assert (await client.get("/static/crm_events/missing.js")).status_code == 404


# --- the partitions panel's JSON, and the favicon --------------------------------------------


@pytest.fixture
def hub(monkeypatch):
    """A hub that was never started (no Kafka, no Redis), handed to the view."""
    found = hub_at({("aetherlink.events", 0): 12, ("aetherlink.events", 1): 0})
    monkeypatch.setattr(viewer, "hub_get", lambda: found)
    return found


def test_partitions_are_refused_in_the_one_json_shape_to_who_may_not_see_the_page(db, hub):
    clerk = Client()
    clerk.force_login(User.objects.create_user("clerk", password="pw"))
    for client in (Client(), clerk):
        response = client.get(PARTITIONS)
        assert response.status_code == 403
        assert response.json() == {"ok": False, "error": VIEWER_FORBIDDEN, "code": "forbidden"}
        assert "no-store" in response["Cache-Control"]


def test_staff_get_the_partitions_report(staff_client, hub):
    response = staff_client.get(PARTITIONS)
    assert response.status_code == 200
    assert "no-cache" in response["Cache-Control"]
    body = response.json()
    rows = [(p["partition"], p["last_offset"], p["lag"]) for p in body["partitions"]]
    assert rows == [(0, 11, None), (1, None, None)]
    assert staff_client.post(PARTITIONS).status_code == 405


@override_settings(VIEWER_PUBLIC=True, DEBUG=True)
def test_a_public_viewer_shows_its_partitions_without_login(db, hub):
    assert Client().get(PARTITIONS).status_code == 200


@override_settings(STATIC_URL="static/")  # Django caches STATIC_URL with the script prefix of its first use
async def test_favicon_ico_is_sent_to_the_static_icon():
    client = AsyncClient()
    response = await client.get("/favicon.ico")
    assert (response.status_code, response["Location"]) == (302, "/static/crm_events/favicon.svg")
    icon = await client.get("/static/crm_events/favicon.svg")
    assert icon.status_code == 200
    assert icon["Content-Type"].startswith("image/svg+xml")


@pytest.mark.parametrize(
    ("superuser", "grant", "rule", "text"),
    [
        (True, None, "superuser", viewer.ACCESS_SUPERUSER),
        (False, None, "none", viewer.ACCESS_NONE.format(refusal=GRANT_NONE)),
        (False, {"kind": ["deal"]}, "user",
         viewer.ACCESS_GRANTED.format(owner="user:boss", grant='{"kind": ["deal"]}')),
    ],
)
def test_under_session_auth_the_page_says_which_grant_is_in_force_or_why_it_shows_nothing(
    db, settings, superuser, grant, rule, text
):
    settings.SSE_AUTH_MODE = "session"
    user = User.objects.create_user("boss", password="pw", is_staff=True, is_superuser=superuser)
    if grant is not None:
        AccessGrant.objects.create(user=user, grant=grant)
    client = Client()
    client.force_login(user)
    page = client.get(VIEWER).content.decode()
    note = re.search(r'<p id="viewer-access" class="([^"]*)" data-rule="([^"]*)">([^<]*)</p>', page)
    assert note and (note.group(2), unescape(note.group(3))) == (rule, text)
    assert ("viewer-notice" in note.group(1)) is (rule == "none")  # a refusal shows as a warning


def test_other_auth_modes_say_nothing_of_grants(staff_client, settings):
    settings.SSE_AUTH_MODE = "none"
    assert 'id="viewer-access"' not in staff_client.get(VIEWER).content.decode()
