"""Schema Registry decoding against a real registry (Apicurio Registry 3, its Confluent API),
with values serialized by confluent-kafka's own serializers."""

from __future__ import annotations

import asyncio
import base64
import json
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

from crm_events.config import RegistryConfig
from crm_events.core.records import record_decode
from crm_events.registry.decoder import RegistryDecoder
from scripts.servers.apicurio import ApicurioServer
from tests.support.registry_producer import PROTO_DEAL_JSON, ForeignProducer, avro_deal_json

pytestmark = pytest.mark.integration


@dataclass
class Record:
    value: bytes | None
    key: bytes | None = None
    topic: str = "deals"
    partition: int = 0
    offset: int = 0
    timestamp: int = 0
    headers: tuple[()] = ()


@pytest.fixture
def registry(apicurio: ApicurioServer) -> ApicurioServer:
    return apicurio


def registry_get(url: str):
    with urllib.request.urlopen(url) as answer:
        return json.load(answer)


async def decoded(decoder: RegistryDecoder, *values: bytes) -> list[dict]:
    records = [Record(value) for value in values]
    await decoder.prepare(records)
    return [record_decode(record, decoder) for record in records]


async def test_avro_protobuf_and_json_schema_values_decode_with_their_schema(registry):
    producer = ForeignProducer(registry.url)
    avro, proto = producer.avro("deals", 1, 2), producer.protobuf("deals-pb")
    js = producer.json("deals-js", {"id": "x"})
    decoder = RegistryDecoder(RegistryConfig(url=registry.url))
    payloads = await decoded(decoder, avro, proto, js)
    assert [(p["value"], p["value_format"]) for p in payloads] == [
        (avro_deal_json(1, 2), "avro"), (PROTO_DEAL_JSON, "protobuf"), ({"id": "x"}, "json_schema"),
    ]
    # The registry files one schema (the same content) under every subject that registered it:
    # the payload names the first it lists, as the registry lists it.
    for payload in payloads:
        schema_id = payload["value_schema"]["id"]
        first = (await asyncio.to_thread(registry_get, f"{registry.url}/schemas/ids/{schema_id}/versions"))[0]
        assert payload["value_schema"] == {"id": schema_id, **first}
        assert "value_error" not in payload


async def test_versions_one_and_two_interleaved_each_decode_with_its_own_schema(registry):
    producer = ForeignProducer(registry.url)
    values = [producer.avro("evolving", version, number) for number, version in enumerate([1, 2, 1, 2])]
    payloads = await decoded(RegistryDecoder(RegistryConfig(url=registry.url)), *values)
    assert [p["value"] for p in payloads] == [avro_deal_json(v, n) for n, v in enumerate([1, 2, 1, 2])]
    assert [p["value_schema"]["version"] for p in payloads] == [1, 2, 1, 2]


async def test_an_unknown_id_is_delivered_at_once_marked_with_its_id(registry):
    raw = b"\x00\x00\x0f\x42\x40payload"
    [payload] = await decoded(RegistryDecoder(RegistryConfig(url=registry.url)), raw)
    assert payload["value_format"] == "registry_undecoded"
    assert payload["value"] == base64.b64encode(raw).decode()
    assert payload["value_schema"] == {"id": 1_000_000, "subject": None, "version": None}
    assert payload["value_error"] == "unknown: the registry does not know schema id 1000000"


async def test_a_registry_restart_keeps_cached_ids_decoding_and_marks_new_ones_until_it_returns(
    tmp_path: Path,
):
    server = ApicurioServer(tmp_path)
    server.start()
    try:
        producer = ForeignProducer(server.url)
        before = producer.avro("restart", 1, 0)
        decoder = RegistryDecoder(RegistryConfig(url=server.url, retry_seconds=1.0))
        await decoded(decoder, before)
        server.stop()
        # Cached: decodes with the registry gone. Not cached: retried for 1s, then marked.
        [cached, missing] = await decoded(decoder, before, b"\x00\x00\x00\x00\x07x")
        assert cached["value"] == avro_deal_json(1, 0)
        assert missing["value_format"] == "registry_undecoded"
        assert missing["value_error"].startswith("unreachable: the registry cannot be reached")
        assert decoder.status()["reachable"] is False and decoder.status()["delivering_marked"] is True
        server.start()
        # In-memory storage forgot the schemas: the producer registers again (ids start over).
        after = ForeignProducer(server.url).avro("restart", 2, 1)
        decoder.cache.clear()  # past the probe interval, as time would have it
        [resumed] = await decoded(decoder, after)
        assert resumed["value"] == avro_deal_json(2, 1)
        assert decoder.status()["reachable"] is True
    finally:
        server.stop()
