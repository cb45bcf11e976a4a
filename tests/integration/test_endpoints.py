"""`/`, `/healthz` and `/readyz` of a real Daphne process, with Kafka and Redis real or absent."""

from __future__ import annotations

from scripts.servers import KafkaServer, free_port
from tests.support.processes import http_get, wait_until


def test_info_says_ready_only_when_readyz_does(stack):
    _, port = stack.daphne()  # no consume_events: no heartbeat, so not ready
    status, body = http_get(port, "/")
    assert status == 200 and body["status"].startswith("not ready: ")
    assert http_get(port, "/readyz")[0] == 503
    stack.consumer()
    stack.wait_ready(port)
    assert http_get(port, "/")[1]["status"] == "ready"


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


def test_readyz_waits_for_a_consumer_heartbeat(stack):
    _, port = stack.daphne()
    status, body = http_get(port, "/readyz")
    assert status == 503
    assert body["ok"] is False
    assert body["checks"]["redis"] == "ok"
    assert "no heartbeat from consume_events" in body["checks"]["consumer"]
    assert body["checks"]["hub"] in ("ok", "joining the channel layer")

    consumer = stack.consumer()
    stack.wait_ready(port)
    assert http_get(port, "/readyz") == (
        200, {"ok": True, "checks": {"redis": "ok", "hub": "ok", "consumer": "ok"}, "streams": 0}
    )

    consumer.stop()
    status, body = wait_until(
        lambda: (lambda r: r if r[0] == 503 else None)(http_get(port, "/readyz")),
        timeout=20, what="/readyz to notice the consumer stopped",
    )
    assert "last heartbeat from consume_events was" in body["checks"]["consumer"]


def test_readyz_reports_redis_down(stack):
    stack.env["REDIS_URL"] = f"redis://127.0.0.1:{free_port()}/0"
    _, port = stack.daphne()
    status, body = http_get(port, "/readyz")
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
        assert http_get(port, "/readyz")[0] == 503
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
