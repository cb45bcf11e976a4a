"""Metrics, the canary, Kafka SASL and JSON logs, on real Kafka, Redis, Daphne and consume_events."""

from __future__ import annotations

import asyncio
import json
import socket
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import jwt
import pytest
from prometheus_client.parser import text_string_to_metric_families

from crm_events.ops.scrape_access import SCRAPE_FORBIDDEN
from scripts.servers import RedisServer, free_port
from tests.integration.conftest import Stack, json_values, produce, topic_create
from tests.support.processes import http_get, service_env, wait_until
from tests.support.sasl_kafka import SaslKafkaServer
from tests.support.sse_client import SseConnection

EVENTS = 30


def samples(text: str) -> dict[str, list]:
    """Metric name -> [(labels, value)] from a Prometheus text exposition."""
    found: dict[str, list] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found.setdefault(sample.name, []).append((sample.labels, sample.value))
    return found


def value(found: dict[str, list], name: str, **labels) -> float:
    matching = [v for sample_labels, v in found.get(name, []) if labels.items() <= sample_labels.items()]
    assert matching, f"{name}{labels} not exported"
    return sum(matching)


def scrape(port: int, headers: dict[str, str] | None = None) -> tuple[int, str, str]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/metrics", headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.headers["Content-Type"], response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.headers["Content-Type"], error.read().decode()


def consumer_metrics(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        return response.read().decode()


def seq_events(connection: SseConnection) -> list[dict]:
    payloads = [event.json() for event in connection.parser.events if event.data]
    return [p for p in payloads if p.get("kind") == "domain_event" and "seq" in (p.get("value") or {})]


def status_503(port: int):
    status, body = http_get(port, "/status")
    return body if status == 503 else None


async def test_metrics_after_a_real_stream_and_the_canary(stack, kafka, topic):
    consumer_port = free_port()
    stack.env.update(CANARY_INTERVAL="0.5", CANARY_MAX_AGE="4", CONSUMER_METRICS_PORT=str(consumer_port))
    consumer = stack.consumer()
    _, port = stack.daphne()
    stack.wait_ready(port)
    status, body = http_get(port, "/status")
    assert (status, body["checks"]) == (200, {
        "hub": "ok", "shutdown": "ok", "capacity": "ok",
        "redis": "ok", "layer": "ok", "kafka": "ok", "consumer": "ok", "canary": "ok",
    })

    connection = await SseConnection.open("127.0.0.1", port, "/crm-events")
    with_canaries = await SseConnection.open("127.0.0.1", port, "/crm-events?canary=1")
    await connection.events_until(lambda events: len(events) >= 2, timeout=15)
    await produce(kafka.bootstrap, topic, json_values(EVENTS), partitions=[i % 3 for i in range(EVENTS)])
    await connection.events_until(lambda _: len(seq_events(connection)) >= EVENTS, timeout=60)
    assert len(seq_events(connection)) == EVENTS
    # Canaries are hidden from streams unless asked for.
    assert b"aetherlink.canary" not in connection.raw_body
    await with_canaries.events_until(lambda _: b'"type":"aetherlink.canary"' in with_canaries.raw_body, 15)
    with_canaries.close()
    assert b'"type":"aetherlink.canary"' in with_canaries.raw_body

    connection.close()
    # The lag rides on the consumer's heartbeats: wait for one taken after the assignment.
    status, content_type, text = wait_until(
        lambda: (lambda r: r if 'aetherlink_consumer_lag{' in r[2] else None)(scrape(port)),
        timeout=20, what="consumer lag in /metrics",
    )
    assert (status, content_type.split(";")[0]) == (200, "text/plain")
    web = samples(text)
    # Every event reached this process's hub, and so did at least one canary.
    assert value(web, "aetherlink_events_received_total", topic=topic) >= EVENTS + 1
    assert value(web, "aetherlink_delivery_latency_seconds_count") >= EVENTS + 1
    assert value(web, "aetherlink_delivery_latency_seconds_bucket", le="+Inf") >= EVENTS + 1
    assert 0 <= value(web, "aetherlink_canary_age_seconds") < 4
    assert 0 <= value(web, "aetherlink_canary_delay_seconds") < 4
    lag_partitions = {labels["partition"] for labels, _ in web["aetherlink_consumer_lag"]
                      if labels["topic"] == topic}
    assert lag_partitions == {"0", "1", "2"}
    assert "process_cpu_seconds_total" in web

    consumer_side = samples(await asyncio.to_thread(consumer_metrics, consumer_port))
    assert "aetherlink_consumer_lag" in consumer_side
    assert value(consumer_side, "aetherlink_events_consumed_total", topic=topic) >= EVENTS + 1
    assert {labels["partition"] for labels, _ in consumer_side["aetherlink_consumer_lag"]} == {"0", "1", "2"}

    consumer.stop()
    body = wait_until(lambda: status_503(port), timeout=20, what="/status to notice the canary stopped")
    wait_until(lambda: (status_503(port) or {}).get("checks", {}).get("canary", "").startswith(
        "last canary event arrived"), timeout=20, what="a stale canary")
    assert (body["ok"], body["ready"]) == (False, True)
    assert http_get(port, "/readyz")[0] == 200  # upstream's trouble: this process still serves


def test_metrics_are_refused_outside_the_allowed_networks_without_the_token(stack):
    stack.env.update(METRICS_ALLOWED_NETWORKS="10.0.0.0/8", METRICS_TOKEN="scrape-token-" + uuid.uuid4().hex)
    _, port = stack.daphne()
    status, content_type, text = scrape(port)
    assert (status, content_type, json.loads(text)) == (403, "application/json", {
        "ok": False, "code": "forbidden",
        "error": SCRAPE_FORBIDDEN,
    })
    assert scrape(port, {"Authorization": "Bearer wrong"})[0] == 403
    status, _, text = scrape(port, {"Authorization": f"Bearer {stack.env['METRICS_TOKEN']}"})
    assert status == 200 and "aetherlink_sse_streams_connected" in text


def accepts(address: str, port: int) -> bool:
    """Whether a TCP connection to address:port is accepted."""
    try:
        with socket.create_connection((address, port), timeout=2):
            return True
    except OSError:
        return False


def other_local_addresses() -> list[str]:
    """Addresses of this machine other than 127.0.0.1 that a server on every interface answers:
    127.0.0.2 (Linux routes all of 127.0.0.0/8 to the loopback), and the outward address, if any."""
    addresses = ["127.0.0.2"]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # TEST-NET-1: a UDP connect picks a route, sends nothing
            outward = probe.getsockname()[0]
        except OSError:
            outward = "127.0.0.1"
    return addresses + ([outward] if not outward.startswith("127.") else [])


def test_consumer_metrics_listen_on_loopback_only_unless_asked(stack):
    private, every = free_port(), free_port()
    stack.env["CONSUMER_METRICS_PORT"] = str(private)
    default = stack.consumer("consumer-default")
    # The control: the same check must see a server asked to listen on every interface.
    stack.env.update(CONSUMER_METRICS_PORT=str(every), CONSUMER_METRICS_ADDRESS="0.0.0.0")
    control = stack.consumer("consumer-every-interface")
    wait_until(lambda: accepts("127.0.0.1", private) and accepts("127.0.0.1", every), timeout=60,
               what="both consumers' metrics on 127.0.0.1")
    assert "process_cpu_seconds_total" in consumer_metrics(private)  # it is the metrics endpoint
    for address in other_local_addresses():
        assert not accepts(address, private), f"metrics reachable on {address}:{private}"
        assert accepts(address, every), f"the control is not reachable on {address}:{every}"
    wait_until(lambda: f"consumer metrics on http://127.0.0.1:{private}/metrics" in default.log_text(),
               timeout=10, what="the bound address in the default consumer's log")
    wait_until(lambda: f"consumer metrics on http://0.0.0.0:{every}/metrics" in control.log_text(),
               timeout=10, what="the bound address in the control consumer's log")


# --- Kafka SASL and JSON logs with secrets everywhere -------------------------------------------

KAFKA_PASSWORD = "kafka-pw-" + uuid.uuid4().hex
JWT_KEY = "jwt-key-" + uuid.uuid4().hex + uuid.uuid4().hex
METRICS_TOKEN = "metrics-token-" + uuid.uuid4().hex
DJANGO_KEY = "django-key-" + uuid.uuid4().hex
SESSION_ID = "session-" + uuid.uuid4().hex


@pytest.fixture(scope="module")
def sasl_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SaslKafkaServer]:
    server = SaslKafkaServer(
        port=free_port(), controller_port=free_port(), data_dir=tmp_path_factory.mktemp("sasl-kafka"),
        sasl_port=free_port(), username="svc", password=KAFKA_PASSWORD,
    )
    server.start()
    yield server
    server.stop()


@pytest.fixture
def sasl_stack(sasl_kafka: SaslKafkaServer, redis_server: RedisServer, tmp_path: Path) -> Iterator[Stack]:
    unique = uuid.uuid4().hex[:10]
    topic = f"crm-sasl-{unique}"
    asyncio.run(topic_create(sasl_kafka.bootstrap, topic))
    env = service_env(
        KAFKA_BROKERS=sasl_kafka.sasl_bootstrap, KAFKA_TOPIC=topic, KAFKA_GROUP=f"group-{unique}",
        KAFKA_SECURITY_PROTOCOL="SASL_PLAINTEXT", KAFKA_SASL_MECHANISM="PLAIN",
        KAFKA_SASL_USERNAME="svc", KAFKA_SASL_PASSWORD=KAFKA_PASSWORD,
        REDIS_URL=redis_server.url, REDIS_PREFIX=f"test-{unique}",
        LOG_FORMAT="json", LOG_LEVEL="DEBUG", DJANGO_SECRET_KEY=DJANGO_KEY,
        SSE_AUTH_MODE="jwt", SSE_JWT_KEY=JWT_KEY, SSE_JWT_COOKIE="crm_token", METRICS_TOKEN=METRICS_TOKEN,
    )
    running = Stack(env, tmp_path)
    yield running
    running.stop_all()


def client_token(subject: str) -> str:
    return jwt.encode({"sub": subject, "exp": int(time.time()) + 600}, JWT_KEY, algorithm="HS256")


async def test_sasl_consumer_and_json_logs_without_secrets(sasl_stack, sasl_kafka):
    header_token, cookie_token = client_token("header-client"), client_token("cookie-client")
    consumer = sasl_stack.consumer()
    daphne, port = sasl_stack.daphne()
    sasl_stack.wait_ready(port)
    topic = sasl_stack.env["KAFKA_TOPIC"]

    connection = await SseConnection.open("127.0.0.1", port, "/crm-events", headers={
        "Authorization": f"Bearer {header_token}",
        "Cookie": f"crm_token={cookie_token}; sessionid={SESSION_ID}",
    })
    await connection.events_until(lambda events: len(events) >= 2, timeout=15)
    await produce(sasl_kafka.bootstrap, topic, json_values(5), partitions=[0] * 5)
    await connection.events_until(lambda _: len(seq_events(connection)) >= 5, timeout=60)
    connection.close()
    # The records went through the SASL listener, consumed with the service's credentials.
    assert [event["value"]["seq"] for event in seq_events(connection)] == [0, 1, 2, 3, 4]

    # Requests whose logged paths carry secret-shaped text: the filter must mask them.
    assert http_get(port, f"/nope/{header_token}")[0] == 404
    assert http_get(port, f"/nope/password={KAFKA_PASSWORD}")[0] == 404
    assert http_get(port, f"/nope?access_token={header_token}")[0] == 404
    assert scrape(port, {"Authorization": f"Bearer {METRICS_TOKEN}"})[0] == 200
    sasl_stack.stop_all()

    logs = {process.name: process.log_text() for process in (consumer, daphne)}
    for name, text in logs.items():
        for line in filter(None, text.splitlines()):
            entry = json.loads(line)  # every line is one JSON object
            assert {"timestamp", "level", "logger", "message"} <= set(entry), (name, line)
        for secret in (KAFKA_PASSWORD, JWT_KEY, METRICS_TOKEN, DJANGO_KEY, SESSION_ID,
                       header_token, cookie_token):
            assert secret not in text, (name, secret)
    messages = [json.loads(line)["message"] for line in logs["daphne"].splitlines() if line]
    assert "Not Found: /nope/***" in messages
    assert "Not Found: /nope/password=***" in messages
    access = [json.loads(line) for line in logs["daphne"].splitlines() if '"daphne.access"' in line]
    assert any('"GET /nope/***" 404' in entry["message"] for entry in access)  # Daphne's own log, too
    assert all(entry["client"].startswith("127.0.0.1:") for entry in access)
    assert any("security=SASL_PLAINTEXT PLAIN user=svc" in json.loads(line)["message"]
               for line in logs["consumer"].splitlines() if line)
