"""`/`, `/healthz`, `/readyz` and `/status` of a real Daphne process, with Kafka and Redis real or absent.

`/readyz` is this process's own state only; what is upstream (the consumer, Redis, Kafka) is
`/status`'s (crm_events/ops/process_checks.py)."""

from __future__ import annotations

from crm_events.ops.process_checks import AT_CAPACITY
from crm_events.ops.readiness import HUB_JOINING
from scripts.servers import KafkaServer, free_port
from tests.support.processes import async_wait_until, http_get, wait_until
from tests.support.sse_client import SseConnection

READY = {"hub": "ok", "shutdown": "ok", "capacity": "ok"}


def test_info_says_ready_as_readyz_does_whatever_the_consumer(stack):
    _, port = stack.daphne()  # no consume_events: no heartbeat, which is upstream's business
    stack.wait_ready(port, path="/readyz")
    assert http_get(port, "/")[1]["status"] == "ready"
    assert http_get(port, "/status")[0] == 503


def test_info_and_health(stack, kafka, topic):
    stack.consumer()
    _, port = stack.daphne()
    stack.wait_ready(port)
    assert http_get(port, "/") == (200, {
        "ok": True,
        "service": "crm-events",
        "status": "ready",
        "kafka_brokers": kafka.bootstrap,
        "topic": topic,
        "topics": [topic],
        "group": stack.env["KAFKA_GROUP"],
        "asyncapi": "/asyncapi.yaml",
    })
    assert http_get(port, "/healthz") == (200, {"ok": True})


def test_broker_credentials_are_redacted_in_info(stack):
    stack.env["KAFKA_BROKERS"] = "SASL_SSL://svc:hunter2@kafka.internal:9093"
    _, port = stack.daphne()
    status, body = http_get(port, "/")
    assert status == 200
    assert body["kafka_brokers"] == "SASL_SSL://***@kafka.internal:9093"


def test_status_waits_for_a_consumer_heartbeat_and_readyz_does_not(stack):
    _, port = stack.daphne()
    stack.wait_ready(port, path="/readyz")
    assert http_get(port, "/readyz") == (200, {"ok": True, "checks": READY, "streams": 0})
    status, body = http_get(port, "/status")
    assert (status, body["ok"], body["ready"]) == (503, False, True)
    assert {name: body["checks"][name] for name in ("redis", "layer", "kafka")} == {
        "redis": "ok", "layer": "ok", "kafka": "ok"}
    assert "no heartbeat from consume_events" in body["checks"]["consumer"]

    consumer = stack.consumer()
    stack.wait_ready(port)
    assert http_get(port, "/status") == (200, {
        "ok": True, "ready": True,
        "checks": {**READY, "redis": "ok", "layer": "ok", "kafka": "ok", "consumer": "ok"}, "streams": 0,
    })

    consumer.stop()
    status, body = wait_until(
        lambda: (lambda r: r if r[0] == 503 else None)(http_get(port, "/status")),
        timeout=20, what="/status to notice the consumer stopped",
    )
    assert "last heartbeat from consume_events was" in body["checks"]["consumer"]
    assert http_get(port, "/readyz") == (200, {"ok": True, "checks": READY, "streams": 0})


def test_redis_down_from_the_start_keeps_the_process_unready_and_status_says_why(stack):
    stack.env["REDIS_URL"] = f"redis://127.0.0.1:{free_port()}/0"
    _, port = stack.daphne()
    status, body = http_get(port, "/readyz")
    assert status == 503
    assert body["checks"]["hub"] == HUB_JOINING  # never joined: this process cannot serve live events yet
    status, body = http_get(port, "/status")
    assert status == 503
    assert body["checks"]["redis"].startswith("redis unreachable")
    assert http_get(port, "/healthz") == (200, {"ok": True})


def test_kafka_down_at_start_then_the_broker_comes(stack, tmp_path):
    broker = KafkaServer(port=free_port(), controller_port=free_port(), data_dir=tmp_path / "late")
    stack.env["KAFKA_BROKERS"] = broker.bootstrap
    consumer = stack.consumer()
    _, port = stack.daphne()
    wait_until(lambda: "unreachable" in consumer.log_text(), timeout=30, what="a retry log line")
    for _ in range(3):
        assert http_get(port, "/healthz") == (200, {"ok": True})
        assert http_get(port, "/status")[1]["checks"]["kafka"].startswith("kafka unreachable: ")
    # A stream cannot start, but a browser must keep retrying: 200 and a reconnect frame.
    status, body = http_get(port, "/crm-events", timeout=15)
    assert status == 200
    assert b'"kind":"reconnect","reason":"unavailable"' in body
    broker.start()
    try:
        stack.wait_ready(port, timeout=90)
        assert consumer.is_running()
        assert "created topics" in consumer.log_text()
    finally:
        stack.stop_all()
        broker.stop()


async def test_readyz_fails_while_the_process_is_at_capacity(stack):
    stack.env["SSE_MAX_STREAMS"] = "2"
    stack.consumer()
    _, port = stack.daphne()
    stack.wait_ready(port)
    streams = [await SseConnection.open("127.0.0.1", port, "/crm-events") for _ in range(2)]
    for stream in streams:
        await stream.events_until(lambda events: any('"kind":"connected"' in e.data for e in events), 15)
    status, body = http_get(port, "/readyz")
    assert (status, body["checks"]["capacity"]) == (503, AT_CAPACITY.format(streams=2, limit=2))
    streams.pop().close()
    await async_wait_until(lambda: http_get(port, "/readyz")[0] == 200, timeout=15, what="room again")
    assert http_get(port, "/readyz")[1] == {"ok": True, "checks": READY, "streams": 1}
    streams.pop().close()
