"""`/healthz`, `/readyz`, `/status` and `/metrics` of a real web process as a kubelet and
Prometheus ask them: `GET http://<pod IP>:9010/...`, a Host no setting names, plain http,
under production settings. And access to `/metrics` and `/status` by the socket's peer, never
by X-Forwarded-For, even from a trusted proxy."""

from __future__ import annotations

import http.client
import json

from crm_events.ops.scrape_access import SCRAPE_FORBIDDEN
from tests.support.processes import wait_until

POD_HOST = "10.42.0.17:9010"
PRODUCTION = {
    "DJANGO_ALLOWED_HOSTS": "crm-events.example.com",
    "DJANGO_SECURE_PROXY_SSL_HEADER": "true",
    "DJANGO_SECURE_SSL_REDIRECT": "true",
}


def get(port: int, path: str, *, host: str = POD_HOST, source: str = "127.0.0.1",
        headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    """A GET from `source` (any 127.0.0.x is this machine's loopback) with this Host header."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10, source_address=(source, 0))
    try:
        connection.putrequest("GET", path, skip_host=True)
        connection.putheader("Host", host)
        for name, value in (headers or {}).items():
            connection.putheader(name, value)
        connection.endheaders()
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def test_probes_and_scrapes_answer_a_pod_address_over_plain_http(stack):
    stack.env.update(PRODUCTION)
    stack.consumer()
    _, port = stack.daphne()
    wait_until(lambda: get(port, "/status")[0] == 200, timeout=60, what="/status 200 at the pod address")
    assert get(port, "/healthz") == (200, b'{"ok": true}')
    status, body = get(port, "/readyz")
    assert (status, json.loads(body)["ok"]) == (200, True)
    status, body = get(port, "/metrics")
    assert status == 200 and b"aetherlink_sse_streams_connected" in body
    # The control: any other path still gets the Host check, and the public name the redirect.
    assert get(port, "/")[0] == 400
    assert get(port, "/", host="crm-events.example.com")[0] == 301


def test_a_trusted_proxy_cannot_forward_a_scrape_in(stack):
    """The issue's case: TRUSTED_PROXIES trusts the proxy at 127.0.0.2, which passes on
    `X-Forwarded-For: 127.0.0.1, 127.0.0.2`; only 127.0.0.1 itself may scrape without the token."""
    stack.env.update(PRODUCTION, TRUSTED_PROXIES="127.0.0.2/32", METRICS_ALLOWED_NETWORKS="127.0.0.1/32")
    _, port = stack.daphne()
    forwarded = {"X-Forwarded-For": "127.0.0.1, 127.0.0.2"}
    refused = {"ok": False, "code": "forbidden", "error": SCRAPE_FORBIDDEN}
    for path in ("/metrics", "/status"):
        status, body = get(port, path, source="127.0.0.2", headers=forwarded)
        assert (status, json.loads(body)) == (403, refused), path
        assert get(port, path, source="127.0.0.1")[0] in (200, 503), path  # the control: the peer itself
    assert get(port, "/metrics", source="127.0.0.1")[0] == 200
