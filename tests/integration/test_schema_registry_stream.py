"""Registry-encoded records through the whole service: a foreign producer (confluent-kafka's client
and serializers) -> Kafka -> consume_events (decodes) -> Redis -> Daphne -> SSE, live and replayed
(the web process decodes the replay with the same code), with an unknown id dead-lettered."""

from __future__ import annotations

import asyncio
import base64
import json
import re
from pathlib import Path

import pytest
import yaml
from jsonschema import Draft7Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7

from scripts.servers import free_port
from scripts.servers.apicurio import ApicurioServer
from tests.integration.conftest import topic_create
from tests.integration.test_faults_hostile_records import dead_letters
from tests.support.processes import http_get, wait_until
from tests.support.registry_producer import (
    PROTO_DEAL_JSON,
    ForeignProducer,
    avro_deal_json,
    confluent_produce,
)
from tests.support.sse_client import SseConnection

pytestmark = pytest.mark.integration

UNKNOWN = b"\x00\x00\x0f\x42\x40not a schema this registry has"
DOCUMENT = Path(__file__).resolve().parents[2] / "crm_events" / "asyncapi.yaml"


def domain_event_validator() -> Draft7Validator:
    document = yaml.safe_load(DOCUMENT.read_text())
    resource = Resource.from_contents(document, default_specification=DRAFT7)
    registry = Registry().with_resource("urn:asyncapi", resource)
    return Draft7Validator({"$ref": "urn:asyncapi#/components/schemas/DomainEvent"}, registry=registry)


def mine(events):
    return [e for e in events if e.event is None and '"domain_event"' in e.data]


async def connected(port: int, path: str, headers=None) -> SseConnection:
    """A stream that has said hello: live from here on."""
    connection = await SseConnection.open("127.0.0.1", port, path, headers)
    assert connection.status == 200
    await connection.events_until(lambda events: any('"connected"' in e.data for e in events), timeout=20)
    return connection


async def domain_events(connection: SseConnection, count: int) -> tuple[list[dict], list[str]]:
    await connection.events_until(lambda events: len(mine(events)) >= count, timeout=60)
    connection.close()
    events = mine(connection.parser.events)
    return [e.json() for e in events], [e.id or "" for e in events]


async def test_registry_records_arrive_decoded_live_and_replayed_and_unknown_ids_dead_lettered(
    stack, kafka, topic, apicurio
):
    dead = f"{topic}.dead-letters"
    await topic_create(kafka.bootstrap, dead)
    stack.env.update(SCHEMA_REGISTRY_URL=apicurio.url, KAFKA_DEAD_LETTER_TOPIC=dead)
    stack.consumer()
    _, port = stack.daphne()
    stack.wait_ready(port)
    live = await connected(port, "/crm-events")
    filtered = await connected(port, "/crm-events?kind=deal.won")
    producer = ForeignProducer(apicurio.url)
    values = [
        producer.avro(f"{topic}-avro", 1, 0), producer.avro(f"{topic}-avro", 2, 1),
        producer.avro(f"{topic}-avro", 1, 2), producer.protobuf(f"{topic}-pb"),
        producer.json(f"{topic}-js", {"type": "deal.won", "id": "x"}), UNKNOWN,
        producer.avro(f"{topic}-avro", 2, 3),
    ]
    await asyncio.to_thread(confluent_produce, kafka.bootstrap, topic, values)
    payloads, ids = await domain_events(live, 7)
    expected = [
        (avro_deal_json(1, 0), "avro", 1), (avro_deal_json(2, 1), "avro", 2),
        (avro_deal_json(1, 2), "avro", 1), (PROTO_DEAL_JSON, "protobuf", 1),
        ({"type": "deal.won", "id": "x"}, "json_schema", 1),
        (base64.b64encode(UNKNOWN).decode(), "registry_undecoded", None), (avro_deal_json(2, 3), "avro", 2),
    ]
    assert [(p["value"], p["value_format"], p["value_schema"]["version"]) for p in payloads] == expected
    assert payloads[5]["value_schema"]["id"] == 1_000_000
    assert payloads[5]["value_error"] == "unknown: the registry does not know schema id 1000000"
    validator = domain_event_validator()
    for payload in payloads:
        assert list(validator.iter_errors(payload)) == [], json.dumps(payload)
    # Filters see the decoded value.
    assert [p["offset"] for p in (await domain_events(filtered, 1))[0]] == [4]
    # Replayed from Kafka by the web process, from just after the first: the same payloads.
    replayed, _ = await domain_events(await connected(port, "/crm-events", {"Last-Event-ID": ids[0]}), 6)
    assert replayed == payloads[1:]
    # Only the unknown id went to the dead letters.
    [letter] = await dead_letters(kafka.bootstrap, dead, 1)
    assert letter.value == UNKNOWN


def consumer_metric(port: int, name: str) -> float | None:
    try:
        status, body = http_get(port, "/metrics")
    except OSError:
        return None
    found = re.search(rf"^{name} (\S+)$", body.decode() if isinstance(body, bytes) else str(body), re.M)
    return float(found.group(1)) if status == 200 and found else None


def status_checks(port: int) -> dict:
    body = http_get(port, "/status")[1]
    return body.get("checks", {}) if isinstance(body, dict) else {}


async def test_a_registry_restart_mid_stream_holds_the_poll_then_decodes_it_all(
    stack, kafka, topic, tmp_path
):
    # Its schemas on disk, as a deployed registry keeps them: an in-memory one would come back
    # empty and answer "unknown id" (believed: marked) before anyone could register them again.
    registry = ApicurioServer(tmp_path / "apicurio", persistent=True)
    registry.start()
    try:
        dead = f"{topic}.dead-letters"
        await topic_create(kafka.bootstrap, dead)
        metrics_port = free_port()
        stack.env.update(SCHEMA_REGISTRY_URL=registry.url, KAFKA_DEAD_LETTER_TOPIC=dead,
                         SCHEMA_REGISTRY_RETRY_SECONDS="90", CONSUMER_METRICS_PORT=str(metrics_port))
        stack.consumer()
        _, port = stack.daphne()
        stack.wait_ready(port)
        live = await connected(port, "/crm-events")
        producer = ForeignProducer(registry.url)
        first = producer.avro(f"{topic}-avro", 1, 0)
        await asyncio.to_thread(confluent_produce, kafka.bootstrap, topic, [first])
        await domain_events_no_close(live, 1)  # schema 1 is now in the consumer's cache
        second = producer.avro(f"{topic}-avro", 2, 1)  # registered, never fetched by the consumer
        registry.stop()
        await asyncio.to_thread(confluent_produce, kafka.bootstrap, topic, [first, second])
        wait_until(lambda: consumer_metric(metrics_port, "aetherlink_schema_registry_unreachable") == 1.0,
                   timeout=30, what="the consumer reports the registry unreachable")
        # ... and its heartbeats tell the web process's /status why.
        wait_until(lambda: "consumer_schema_registry" in status_checks(port), timeout=30,
                   what="/status names the consumer's registry outage")
        assert "Schema Registry unreachable for" in status_checks(port)["consumer_schema_registry"]
        assert len(mine(live.parser.events)) == 1  # the poll waits: order is kept
        registry.start()
        payloads, _ = await domain_events(live, 3)
        assert [(p["value"], p["value_format"]) for p in payloads] == [
            (avro_deal_json(1, 0), "avro"), (avro_deal_json(1, 0), "avro"), (avro_deal_json(2, 1), "avro"),
        ]
        wait_until(lambda: consumer_metric(metrics_port, "aetherlink_schema_registry_unreachable") == 0.0,
                   timeout=10, what="the consumer reports the registry back")
        wait_until(lambda: "consumer_schema_registry" not in status_checks(port), timeout=30,
                   what="/status no longer names a registry outage")
        assert await dead_letters(kafka.bootstrap, dead, 1, timeout=3) == []
    finally:
        registry.stop()


async def domain_events_no_close(connection: SseConnection, count: int) -> None:
    await connection.events_until(lambda events: len(mine(events)) >= count, timeout=60)
    assert len(mine(connection.parser.events)) == count
