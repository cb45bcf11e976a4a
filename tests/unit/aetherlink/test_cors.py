"""CORS on the SSE endpoint only, through django-cors-headers and our settings."""

from __future__ import annotations

import pytest


@pytest.fixture
def listed(settings):
    settings.CORS_ALLOW_ALL_ORIGINS = False
    settings.CORS_ALLOWED_ORIGINS = ["https://crm.example"]
    settings.CORS_ALLOW_CREDENTIALS = True
    return settings


def preflight(client, origin: str, path: str = "/crm-events"):
    return client.options(
        path, headers={"Origin": origin, "Access-Control-Request-Method": "GET",
                       "Access-Control-Request-Headers": "authorization,last-event-id"},
    )


def test_preflight_from_a_listed_origin(client, listed):
    response = preflight(client, "https://crm.example")
    assert response.status_code == 200
    assert response["Access-Control-Allow-Origin"] == "https://crm.example"
    assert response["Access-Control-Allow-Credentials"] == "true"
    assert set(response["Access-Control-Allow-Methods"].split(", ")) == {"GET", "OPTIONS"}
    assert {"authorization", "last-event-id"} <= set(response["Access-Control-Allow-Headers"].split(", "))
    assert "origin" in response["Vary"].lower()


def test_preflight_from_another_origin_gets_no_grant(client, listed):
    response = preflight(client, "https://evil.example")
    assert "Access-Control-Allow-Origin" not in response
    assert "Access-Control-Allow-Credentials" not in response


def test_metrics_and_other_paths_have_no_cors(client, listed):
    for path in ("/metrics", "/", "/readyz"):
        response = preflight(client, "https://crm.example", path)
        assert "Access-Control-Allow-Origin" not in response, path


def test_any_origin_is_star_without_credentials(client, settings):
    settings.CORS_ALLOW_ALL_ORIGINS = True
    settings.CORS_ALLOWED_ORIGINS = []
    settings.CORS_ALLOW_CREDENTIALS = False
    response = preflight(client, "https://anyone.example")
    assert response["Access-Control-Allow-Origin"] == "*"
    assert "Access-Control-Allow-Credentials" not in response
