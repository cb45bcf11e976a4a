"""Django's own 400 and 500 answers come in the API's JSON error shape, never as HTML."""

from __future__ import annotations

import json

import pytest
from django.core.management import call_command
from django.test import Client
from django.urls import get_resolver, path

from aetherlink import urls as service_urls
from crm_events.ops import error_views


def boom(request):
    raise RuntimeError("a view failed")


# This module doubles as a URLconf for the 500 test: one failing view, the service's handlers.
urlpatterns = [path("boom", boom)]
handler400 = service_urls.handler400
handler500 = service_urls.handler500


def body_of(response) -> dict:
    assert response["Content-Type"] == "application/json"
    return json.loads(response.content)


def test_the_service_urlconf_names_the_json_handlers():
    resolver = get_resolver("aetherlink.urls")
    assert resolver.resolve_error_handler(400) is error_views.bad_request
    assert resolver.resolve_error_handler(500) is error_views.server_error
    call_command("check")  # Django's own check of the handlers' signatures


def test_too_many_query_parameters_get_a_json_400(settings):
    settings.SSE_AUTH_MODE = "none"
    query = "&".join(f"topic={i}" for i in range(settings.DATA_UPLOAD_MAX_NUMBER_FIELDS + 1))
    response = Client().get(f"/crm-events?{query}")
    assert response.status_code == 400
    assert body_of(response) == {"ok": False, "error": error_views.TOO_MANY_PARAMETERS, "code": "bad_request"}


def test_a_disallowed_host_gets_a_json_400():
    # Not /healthz or /readyz: the probes answer any Host (aetherlink/probes.py).
    response = Client().get("/", HTTP_HOST="evil.example")
    assert response.status_code == 400
    assert body_of(response) == {"ok": False, "error": error_views.BAD_REQUEST, "code": "bad_request"}


@pytest.mark.urls("tests.unit.ops.test_error_views")
def test_a_failing_view_gets_a_json_500():
    response = Client(raise_request_exception=False).get("/boom")
    assert response.status_code == 500
    assert body_of(response) == {"ok": False, "error": error_views.SERVER_ERROR, "code": "server_error"}
    assert response["Cache-Control"] == "no-store"
