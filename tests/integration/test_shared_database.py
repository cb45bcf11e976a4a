"""A stateless web tier on PostgreSQL: two web processes share one database, so a login on one
is honoured by the other (the admin and the stream, by the session cookie), a user created
through one is there for the other, a logout on one ends the session on both, and an open
stream holds no database connection however long it lives (pg_stat_activity counts them)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import psycopg

from tests.support.processes import ROOT, wait_until
from tests.support.sse_client import SseConnection

STAFF, STAFF_PASSWORD = "admin", "admin-password-" + uuid.uuid4().hex[:8]
STREAMS = 20
HEARTBEATS = 3


def init(env: dict[str, str]) -> subprocess.CompletedProcess:
    """docker/init.sh, as compose's `init` service and the chart's Job run it: once per release."""
    path = f"{Path(sys.executable).parent}:{os.environ['PATH']}"
    return subprocess.run(["bash", str(ROOT / "docker" / "init.sh")], cwd=ROOT, env={**env, "PATH": path},
                          capture_output=True, text=True, timeout=180)


def login(port: int, username: str, password: str) -> str:
    """The session id of a staff login over plain http (the cookies are Secure: carried by hand)."""
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
        form = client.get("/admin/login/?next=/admin/")
        csrf = form.cookies["csrftoken"]
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.text).group(1)
        client.cookies.clear()
        answer = client.post(
            "/admin/login/?next=/admin/",
            data={"csrfmiddlewaretoken": token, "username": username, "password": password,
                  "next": "/admin/"},
            headers={"Cookie": f"csrftoken={csrf}", "Origin": f"http://127.0.0.1:{port}"})
        assert (answer.status_code, answer.headers.get("location")) == (302, "/admin/"), answer.text[:2000]
        return re.search(r"sessionid=([^;]+)", answer.headers["set-cookie"]).group(1)


def admin_get(port: int, path: str, session: str | None) -> httpx.Response:
    headers = {"Cookie": f"sessionid={session}"} if session else {}
    return httpx.get(f"http://127.0.0.1:{port}{path}", headers=headers, timeout=30)


def logout(port: int, session: str) -> None:
    """The admin's logout (a POST with the CSRF token of a page it served)."""
    page = admin_get(port, "/admin/", session)
    csrf = page.cookies["csrftoken"]
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
    answer = httpx.post(f"http://127.0.0.1:{port}/admin/logout/", data={"csrfmiddlewaretoken": token},
                        headers={"Cookie": f"sessionid={session}; csrftoken={csrf}",
                                 "Origin": f"http://127.0.0.1:{port}"}, timeout=30)
    assert answer.status_code == 200, answer.text[:2000]


def user_add(port: int, session: str, username: str) -> None:
    """A user added through the admin's own form on this process."""
    form = admin_get(port, "/admin/auth/user/add/", session)
    assert form.status_code == 200
    csrf = form.cookies["csrftoken"]
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.text).group(1)
    password = "Pw-" + uuid.uuid4().hex
    answer = httpx.post(
        f"http://127.0.0.1:{port}/admin/auth/user/add/",
        data={"csrfmiddlewaretoken": token, "username": username, "usable_password": "true",
              "password1": password, "password2": password, "_save": "Save"},
        headers={"Cookie": f"sessionid={session}; csrftoken={csrf}", "Origin": f"http://127.0.0.1:{port}"},
        timeout=30,
    )
    assert answer.status_code == 302, answer.text[:3000]


async def streams_open(ports: list[int], session: str, count: int) -> list[SseConnection]:
    connections = []
    for i in range(count):
        connection = await SseConnection.open("127.0.0.1", ports[i % len(ports)], "/crm-events",
                                              {"Cookie": f"sessionid={session}"})
        assert connection.status == 200
        connections.append(connection)
    for connection in connections:
        await connection.events_until(lambda events: any('"kind":"connected"' in e.data for e in events), 15)
    return connections


def heartbeats(connection: SseConnection) -> int:
    return connection.parser.comments.count("heartbeat")


async def test_two_web_processes_on_one_postgresql_share_logins_and_users(stack, postgres):
    database = f"crm_{uuid.uuid4().hex[:10]}"
    stack.env.update(
        DATABASE_URL=postgres.database_create(database), SSE_AUTH_MODE="session",
        SSE_HEARTBEAT_INTERVAL="0.5",
        DJANGO_SUPERUSER_USERNAME=STAFF, DJANGO_SUPERUSER_PASSWORD=STAFF_PASSWORD,
        DJANGO_SUPERUSER_EMAIL="admin@example.com",
    )
    first = init(stack.env)
    assert first.returncode == 0, first.stdout + first.stderr
    assert f"init: created the admin user {STAFF}" in first.stdout
    again = init(stack.env)  # the next release's init: nothing to do, nothing broken
    assert again.returncode == 0 and f"the admin user {STAFF} exists" in again.stdout, again.stderr

    stack.consumer()
    ports = [stack.daphne(f"daphne-{name}")[1] for name in "ab"]
    for port in ports:
        stack.wait_ready(port)
    a, b = ports

    assert admin_get(b, "/admin/", None).status_code == 302  # the control: B wants a login
    session = login(a, STAFF, STAFF_PASSWORD)
    assert admin_get(b, "/admin/", session).status_code == 200  # A's login, honoured by B
    newcomer = f"user-{uuid.uuid4().hex[:8]}"
    user_add(a, session, newcomer)
    assert f">{newcomer}<" in admin_get(b, "/admin/auth/user/", session).text

    with psycopg.connect(postgres.url(database)):  # the control: a connection held is counted
        assert postgres.backends(database) == 1
    anonymous = await SseConnection.open("127.0.0.1", b, "/crm-events")
    assert anonymous.status == 401
    anonymous.close()
    assert postgres.backends(database) == 0, "a request left its connection open"

    connections = await streams_open(ports, session, STREAMS)  # half on A, half on B
    try:
        for connection in connections:  # alive for a while: several heartbeats each
            await connection.events_until(lambda _, c=connection: heartbeats(c) >= HEARTBEATS, timeout=15)
            assert heartbeats(connection) >= HEARTBEATS and not connection.ended
        assert postgres.backends(database) == 0, "open streams hold database connections"
    finally:
        for connection in connections:
            connection.close()
    more = await streams_open(ports, session, STREAMS)  # and opening them again leaves none either
    for connection in more:
        connection.close()
    wait_until(lambda: postgres.backends(database) == 0, timeout=5, what="no connection left")

    # Database sessions are revocable: a logout on B ends the session on A at once.
    logout(b, session)
    assert admin_get(a, "/admin/", session).status_code == 302
    refused = await SseConnection.open("127.0.0.1", a, "/crm-events", {"Cookie": f"sessionid={session}"})
    assert refused.status == 401
    refused.close()
