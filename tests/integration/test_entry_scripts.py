"""The image's entry scripts (docker/*.sh), run outside a container against the real stack:
they are what compose and Kubernetes start, so they must start the service as shipped."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from cryptography import x509

from scripts.servers import free_port
from tests.integration.conftest import Stack
from tests.support.processes import ROOT, http_get, wait_until

pytestmark = pytest.mark.integration

DOCKER = ROOT / "docker"
REAL_DOMAIN = "crm-events.example.com"


def script(name: str, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(DOCKER / name), *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=180)


def with_venv(env: dict[str, str], **overrides: str) -> dict[str, str]:
    """The scripts call `python` and `daphne` from PATH, as in the image: this virtualenv's."""
    return {**env, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", **overrides}


async def partition_counts(bootstrap: str, topics: list[str]) -> dict[str, int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        described = await admin.describe_topics(topics)
        return {topic["topic"]: len(topic["partitions"]) for topic in described}
    finally:
        await admin.close()


def test_init_web_consumer_and_probe_scripts_start_the_service(stack: Stack, env, tmp_path):
    fresh = f"crm-init-{uuid.uuid4().hex[:10]}"  # not created by the fixtures: init.sh must
    database = tmp_path / "db.sqlite3"
    stack.env.update(with_venv(
        env, KAFKA_TOPIC=fresh, KAFKA_TOPIC_PARTITIONS="4", DATABASE_URL=f"sqlite:///{database}",
        DJANGO_SUPERUSER_USERNAME="admin", DJANGO_SUPERUSER_PASSWORD="admin-password-1",
        DJANGO_SUPERUSER_EMAIL="admin@example.com",
        # As in production: a real domain only, https behind a proxy, plain http redirected.
        DJANGO_ALLOWED_HOSTS=REAL_DOMAIN, DJANGO_SECURE_PROXY_SSL_HEADER="true",
        DJANGO_SECURE_SSL_REDIRECT="true",
    ))

    first = script("init.sh", stack.env)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "init: created the admin user admin" in first.stdout
    assert asyncio.run(partition_counts(env["KAFKA_BROKERS"], [fresh])) == {fresh: 4}
    with sqlite3.connect(database) as db:
        assert db.execute("select is_superuser, is_staff, email from auth_user where username = 'admin'"
                          ).fetchall() == [(1, 1, "admin@example.com")]
    again = script("init.sh", stack.env)  # every start of the compose stack runs it again
    assert again.returncode == 0, again.stdout + again.stderr
    assert "init: the admin user admin exists; left as it is" in again.stdout

    stack.consumer("consumer-sh", command=["bash", str(DOCKER / "consumer.sh")])
    port = free_port()
    stack.daphne("web-sh", port=port, command=["bash", str(DOCKER / "web.sh")],
                 env={"PORT": str(port), "WEB_BIND": "127.0.0.1"})
    stack.wait_ready(port)  # Host 127.0.0.1, plain http: the probes answer anyway

    # The compose healthcheck passes with a real domain in DJANGO_ALLOWED_HOSTS ...
    for probe in ("/readyz", "/healthz"):
        done = script("probe.sh", with_venv(env, PORT=str(port)), probe)
        assert done.returncode == 0, done.stderr
    # ... and fails when the web process is not ready, or not there.
    missing = script("probe.sh", with_venv(env, PORT=str(free_port())))
    assert missing.returncode != 0 and "Connection refused" in missing.stderr
    # Everything else keeps the Host check: the address is not a name this service answers to.
    assert http_get(port, "/")[0] == 400


def test_probe_fails_on_a_503(stack: Stack, env):
    """No consumer: /status is 503 and the probe says so, while /readyz and /healthz pass
    (upstream trouble keeps a web process in its balancer)."""
    port = free_port()
    stack.env.update(with_venv(env))
    stack.daphne("web-sh", port=port, command=["bash", str(DOCKER / "web.sh")],
                 env={"PORT": str(port), "WEB_BIND": "127.0.0.1"})
    wait_until(lambda: http_get(port, "/readyz")[0] == 200, timeout=30, what="/readyz 200")
    status = script("probe.sh", with_venv(env, PORT=str(port)), "/status")
    assert status.returncode == 1 and status.stderr.strip().endswith("/status: 503")
    for probe in ("/readyz", "/healthz"):
        assert script("probe.sh", with_venv(env, PORT=str(port)), probe).returncode == 0


def test_tls_selfsigned_writes_a_certificate_once(tmp_path):
    folder = tmp_path / "tls"
    hosts = f"{REAL_DOMAIN},.example.org,10.0.0.5"
    env = with_venv(dict(os.environ), TLS_DIR=str(folder), DJANGO_ALLOWED_HOSTS=hosts)
    env.pop("TLS_HOSTNAMES", None)
    made = script("tls-selfsigned.sh", env)
    assert made.returncode == 0, made.stderr
    certificate = x509.load_pem_x509_certificate((folder / "fullchain.pem").read_bytes())
    names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == [REAL_DOMAIN, "example.org"]
    assert [str(ip) for ip in names.get_values_for_type(x509.IPAddress)] == ["10.0.0.5"]
    assert oct((folder / "privkey.pem").stat().st_mode & 0o777) == "0o600"
    before = (folder / "fullchain.pem").read_bytes()
    kept = script("tls-selfsigned.sh", env)  # a real certificate put there is never overwritten
    assert kept.returncode == 0 and "keeping the certificate" in kept.stdout
    assert (folder / "fullchain.pem").read_bytes() == before
