"""JWT edges on a real Daphne: a key file's trailing line end, and a token inside the leeway."""

from __future__ import annotations

import time
import uuid

import jwt
import pytest

from crm_events.access import auth
from tests.integration.test_stream_guard import refused
from tests.support.sse_client import SseConnection

KEY = uuid.uuid4().hex + uuid.uuid4().hex  # as `openssl rand -hex 32` writes it, before its newline


def bearer(secret: str, *, exp: float) -> dict[str, str]:
    token = jwt.encode({"sub": "ui", "exp": int(exp)}, secret, algorithm="HS256")
    return {"Authorization": f"Bearer {token}"}


def connected(events) -> bool:
    return any(event.data and event.json().get("kind") == "connected" for event in events)


async def test_a_key_file_loses_exactly_one_trailing_line_end(stack, tmp_path):
    # The file's bytes, the secret the server must verify with, and the one it must not.
    cases = {
        "lf": (KEY + "\n", KEY, KEY + "\n"),
        "crlf": (KEY + "\r\n", KEY, KEY + "\r\n"),
        "two-lf": (KEY + "\n\n", KEY + "\n", KEY),
        "none": (KEY, KEY, KEY + "\n"),
    }
    servers = {}
    for name, (content, _, _) in cases.items():
        key_file = tmp_path / f"key-{name}"
        key_file.write_bytes(content.encode())
        # A secret key starting with `$` is taken as it is, not as a reference to a variable.
        env = {"SSE_AUTH_MODE": "jwt", "SSE_JWT_KEY_FILE": str(key_file), "SSE_JWT_LEEWAY": "0",
               "DJANGO_SECRET_KEY": "$NOT_A_VARIABLE-" + KEY}
        servers[name] = stack.daphne(f"daphne-{name}", env=env)[1]
    exp = time.time() + 600
    for name, (_, secret, other) in cases.items():
        port = servers[name]
        connection = await SseConnection.open("127.0.0.1", port, "/crm-events", bearer(secret, exp=exp))
        try:
            await connection.events_until(connected, timeout=20)
            assert (connection.status, connected(connection.parser.events)) == (200, True), name
        finally:
            connection.close()
        wrong = await refused(port, "/crm-events", bearer(other, exp=exp))
        assert (wrong.status, wrong.body["reason"]) == (401, "invalid"), name


@pytest.fixture
def leeway_port(stack):
    stack.env.update(SSE_AUTH_MODE="jwt", SSE_JWT_KEY=KEY, SSE_JWT_LEEWAY="4", SSE_HEARTBEAT_INTERVAL="0.5")
    stack.consumer()
    _, port = stack.daphne()
    stack.wait_ready(port)
    return port


async def test_a_stream_admitted_inside_the_leeway_lives_until_exp_plus_leeway(leeway_port):
    exp = int(time.time()) - 1  # expired, but within the 4 s of leeway for another 2-3 s
    connection = await SseConnection.open("127.0.0.1", leeway_port, "/crm-events", bearer(KEY, exp=exp))
    try:
        await connection.events_until(lambda _: connection.ended, timeout=20)
        ended_at = time.time()
    finally:
        connection.close()
    assert connection.status == 200
    # It was not sent away at once (the client would loop until the leeway ran out) ...
    assert exp + 4 - 0.25 <= ended_at < exp + 4 + 10
    kinds = [event.json()["kind"] for event in connection.parser.events if event.data]
    assert kinds == ["connected", "reconnect"]
    assert connection.parser.comments.count("heartbeat") >= 2  # live meanwhile, every 0.5 s
    last = connection.parser.events[-1]
    # ... and ends with its resume id, like any stream whose credentials run out.
    assert (last.json(), bool(last.id)) == ({"kind": "reconnect", "reason": "auth_expired"}, True)
    refused_now = await refused(leeway_port, "/crm-events", bearer(KEY, exp=exp))
    assert (refused_now.status, refused_now.body["error"]) == (401, auth.TOKEN_EXPIRED)
