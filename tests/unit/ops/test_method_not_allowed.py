"""Django's 405 answers in the API's JSON error shape, with their Allow and CORS headers kept."""

from __future__ import annotations

import json

import pytest
from django.test import AsyncClient

from crm_events.ops.method_not_allowed import METHOD_NOT_ALLOWED


def refusal(allowed: list[str]) -> dict:
    return {"ok": False, "error": METHOD_NOT_ALLOWED, "code": "method_not_allowed", "allowed": allowed}


@pytest.mark.parametrize(("path", "allowed"), [
    ("/crm-events", ["GET"]),
    ("/healthz", ["GET"]),  # answered by the probe middleware, before the others
    ("/readyz", ["GET"]),
    ("/", ["GET"]),
    ("/asyncapi.yaml", ["GET", "HEAD"]),
    ("/metrics", ["GET"]),
    ("/admin/live-events/partitions", ["GET"]),
])
async def test_a_method_a_url_does_not_answer_gets_a_json_405(path, allowed, settings):
    """With the CSRF check on, as a real client meets it: it must not answer (HTML 403) first."""
    settings.SSE_AUTH_MODE = "none"
    response = await AsyncClient(enforce_csrf_checks=True).post(path)
    assert response.status_code == 405
    assert response["Content-Type"] == "application/json"
    assert response["Allow"] == ", ".join(allowed)
    assert response["Cache-Control"] == "no-store"
    assert json.loads(response.content) == refusal(allowed)
    assert response.get("Content-Length", str(len(response.content))) == str(len(response.content))


async def test_the_cors_headers_of_the_refused_answer_are_kept(settings):
    settings.CORS_ALLOW_ALL_ORIGINS = False
    settings.CORS_ALLOWED_ORIGINS = ["https://crm.example"]
    response = await AsyncClient().delete("/crm-events", headers={"Origin": "https://crm.example"})
    assert response.status_code == 405
    assert response["Access-Control-Allow-Origin"] == "https://crm.example"
    assert json.loads(response.content)["code"] == "method_not_allowed"


async def test_other_answers_pass_unchanged():
    response = await AsyncClient().get("/healthz")
    assert (response.status_code, json.loads(response.content)) == (200, {"ok": True})
