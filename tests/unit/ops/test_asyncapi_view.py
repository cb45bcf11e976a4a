"""`GET /asyncapi.yaml` serves the packaged AsyncAPI document as it is, cacheable, and `/` links it."""

from __future__ import annotations

from pathlib import Path

import yaml
from django.test import AsyncClient

from crm_events.ops import asyncapi_view

DOCUMENT = Path(asyncapi_view.__file__).parents[1] / asyncapi_view.ASYNCAPI_RESOURCE


async def test_the_document_is_served_as_yaml_and_cacheable():
    response = await AsyncClient().get("/asyncapi.yaml")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/yaml; charset=utf-8"
    assert response.content == DOCUMENT.read_bytes()
    assert set(response["Cache-Control"].split(", ")) == {"public", "max-age=3600"}
    assert yaml.safe_load(response.content)["asyncapi"].startswith("3.")


async def test_an_unchanged_document_is_a_304():
    client = AsyncClient()
    etag = (await client.get("/asyncapi.yaml"))["ETag"]
    again = await client.get("/asyncapi.yaml", headers={"If-None-Match": etag})
    assert again.status_code == 304
    assert again.content == b""


async def test_only_get_and_head():
    client = AsyncClient()
    assert (await client.head("/asyncapi.yaml")).status_code == 200
    assert (await client.post("/asyncapi.yaml")).status_code == 405


async def test_the_service_info_links_the_document():
    body = (await AsyncClient().get("/")).json()
    assert body["asyncapi"] == "/asyncapi.yaml"
    assert {"ok", "service", "status", "kafka_brokers", "topic", "topics", "group"} <= set(body)
