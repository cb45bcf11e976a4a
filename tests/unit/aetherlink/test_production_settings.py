"""Production behind a TLS proxy: the settings read from the environment, `check --deploy`,
and the probes that answer whatever the Host header says."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest
from django.http import JsonResponse
from django.test import Client
from django.urls import path

from aetherlink import probes
from tests.support.processes import ROOT

# What docs/production.md lists (the secret key: 50+ random characters).
PRODUCTION = {
    "DJANGO_DEBUG": "false",
    "DJANGO_SECRET_KEY": "3v9Qm2cXr7TqLw0ZpKf8Hs1YbN4uJd6EoGi5Ra-Vx_Ct7Wz2Mn8Bk",
    "DJANGO_ALLOWED_HOSTS": "crm-events.example.com",
    "DJANGO_CSRF_TRUSTED_ORIGINS": "https://crm-events.example.com",
    "DJANGO_SECURE_PROXY_SSL_HEADER": "true",
    "DJANGO_SECURE_SSL_REDIRECT": "true",
    "DJANGO_SECURE_HSTS_SECONDS": "31536000",
    "DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS": "true",
    "DJANGO_SECURE_HSTS_PRELOAD": "false",
}
PRINT = (
    "import json; from aetherlink import settings as s; print(json.dumps({"
    "'csrf': s.CSRF_TRUSTED_ORIGINS, 'proxy': s.SECURE_PROXY_SSL_HEADER, 'redirect': s.SECURE_SSL_REDIRECT,"
    " 'exempt': s.SECURE_REDIRECT_EXEMPT, 'hsts': s.SECURE_HSTS_SECONDS,"
    " 'subdomains': s.SECURE_HSTS_INCLUDE_SUBDOMAINS, 'preload': s.SECURE_HSTS_PRELOAD,"
    " 'silenced': s.SILENCED_SYSTEM_CHECKS, 'session_secure': s.SESSION_COOKIE_SECURE,"
    " 'csrf_secure': s.CSRF_COOKIE_SECURE, 'first_middlewares': s.MIDDLEWARE[:2]}))"
)


def clean_env(**overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KAFKA_", "DJANGO_", "REDIS", "SSE_"))}
    env.update(PYTHONPATH=str(ROOT), **overrides)
    return env


def run(argv: list[str], **overrides: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *argv], cwd=ROOT / "tests", env=clean_env(**overrides),
                          capture_output=True, text=True, timeout=120)


def settings_of(**overrides: str) -> dict:
    result = run(["-c", PRINT], **overrides)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_defaults_are_plain_http_with_secure_cookies_outside_debug():
    assert settings_of(DJANGO_SECRET_KEY="k") == {
        "csrf": [], "proxy": None, "redirect": False,
        "exempt": ["^healthz$", "^readyz$", "^status$", "^metrics$"], "hsts": 0,
        "subdomains": False, "preload": False, "silenced": [], "session_secure": True, "csrf_secure": True,
        # The JSON 405 changes only 405 answers (the probes' too); then the probes, before the Host check.
        "first_middlewares": ["crm_events.ops.method_not_allowed.json_method_not_allowed",
                              "aetherlink.probes.ProbeMiddleware"],
    }
    debug = settings_of(DJANGO_DEBUG="true")
    assert (debug["session_secure"], debug["csrf_secure"]) == (False, False)


def test_the_production_variables():
    loaded = settings_of(**{**PRODUCTION, "DJANGO_CSRF_TRUSTED_ORIGINS": "https://a.example,https://b.example:8443"})
    assert loaded["csrf"] == ["https://a.example", "https://b.example:8443"]
    assert loaded["proxy"] == ["HTTP_X_FORWARDED_PROTO", "https"]
    assert (loaded["redirect"], loaded["hsts"], loaded["subdomains"], loaded["preload"]) == (
        True, 31536000, True, False)
    assert loaded["silenced"] == ["security.W021"]  # preload explicitly declined


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"DJANGO_CSRF_TRUSTED_ORIGINS": "crm-events.example.com"},
         "DJANGO_CSRF_TRUSTED_ORIGINS entries need a scheme, like https://crm-events.example.com; "
         "got 'crm-events.example.com'."),
        ({"DJANGO_SECURE_HSTS_SECONDS": "-1"}, "DJANGO_SECURE_HSTS_SECONDS must be 0 (off) or more, got -1."),
    ],
)
def test_bad_production_values_fail_at_start(overrides, message):
    result = run(["-c", PRINT], DJANGO_SECRET_KEY="k", **overrides)
    assert result.returncode != 0
    assert message in result.stderr


def test_check_deploy_passes_with_the_production_variables(tmp_path):
    result = run([str(ROOT / "manage.py"), "check", "--deploy", "--fail-level", "WARNING"],
                 **PRODUCTION, DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues (1 silenced)." in result.stdout


def test_check_deploy_names_what_is_missing_without_them(tmp_path):
    bare = {name: PRODUCTION[name] for name in ("DJANGO_DEBUG", "DJANGO_SECRET_KEY", "DJANGO_ALLOWED_HOSTS")}
    result = run([str(ROOT / "manage.py"), "check", "--deploy", "--fail-level", "WARNING"],
                 **bare, DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}")
    assert result.returncode != 0
    found = {word for word in result.stderr.split() if word.startswith("(security.")}
    assert found == {"(security.W004)", "(security.W008)"}  # HSTS and the redirect: choices to make
    half = {**PRODUCTION}
    del half["DJANGO_SECURE_HSTS_PRELOAD"]  # left unset: still asked about
    result = run([str(ROOT / "manage.py"), "check", "--deploy", "--fail-level", "WARNING"],
                 **half, DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}")
    assert "(security.W021)" in result.stderr and result.returncode != 0


# --- the probes, whatever the Host ------------------------------------------------------


@pytest.fixture
def locked_down(settings):
    """Only the public name is allowed and plain http is redirected, as in production.
    (Django's test Client: the AsyncClient cannot replace its own Host header.)"""
    settings.ALLOWED_HOSTS = ["crm-events.example.com"]
    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    return settings


def test_healthz_answers_a_kubelet_at_the_pod_address_over_http(locked_down):
    client = Client()
    for host in ("10.42.0.17:9010", "127.0.0.1:9010", "not a host name"):
        response = client.get("/healthz", HTTP_HOST=host)
        assert (response.status_code, json.loads(response.content)) == (200, {"ok": True}), host


async def probe_stub(request):
    return JsonResponse({"ok": True, "path": request.path})


# This module doubles as a URLconf: the probe names on stub views (a real /readyz needs Redis).
urlpatterns = [path(name, probe_stub, name=name) for name in ("healthz", "readyz", "status", "metrics")]


def test_the_probes_and_scrapes_are_answered_by_their_views_before_the_host_check(locked_down):
    locked_down.ROOT_URLCONF = __name__
    client = Client()
    for probe in ("/healthz", "/readyz", "/status", "/metrics"):
        response = client.get(probe, HTTP_HOST="10.42.0.17:9010")
        assert (response.status_code, json.loads(response.content)) == (200, {"ok": True, "path": probe})


def test_every_other_path_keeps_the_host_check_and_the_redirect(locked_down):
    client = Client()
    response = client.get("/", HTTP_HOST="10.42.0.17:9010")
    assert response.status_code == 400  # DisallowedHost, in the API's JSON error shape
    assert json.loads(response.content)["code"] == "bad_request"
    response = client.get("/", HTTP_HOST="crm-events.example.com")
    assert (response.status_code, response["Location"]) == (301, "https://crm-events.example.com/")
    for near in ("/healthz/x", "/metrics/", "/statusx"):
        response = client.get(near, HTTP_HOST="10.42.0.17:9010")
        assert response.status_code == 400, near  # only the probe paths themselves
    response = client.get("/", HTTP_HOST="crm-events.example.com", HTTP_X_FORWARDED_PROTO="https")
    assert response.status_code == 200


def test_the_probe_paths_are_the_probe_views_and_a_urlconf_may_have_none():
    middleware = probes.ProbeMiddleware(lambda request: None)
    assert middleware.probe_paths("aetherlink.urls") == {"/healthz", "/readyz", "/status", "/metrics"}
    assert middleware.probe_paths("tests.unit.ops.test_error_views") == frozenset()


def test_env_example_lists_every_variable_the_settings_read():
    source = (ROOT / "aetherlink" / "settings.py").read_text()
    read = set(re.findall(r'(?:env\.\w+|_\w+)\(\s*"([A-Z][A-Z0-9_]+)"', source))
    read |= set(re.findall(r'\("(DJANGO_SECURE_HSTS_\w+)", "security', source))
    listed = set(re.findall(r"^#? ?([A-Z][A-Z0-9_]+)=", (ROOT / ".env.example").read_text(), re.MULTILINE))
    createsuperuser = {"DJANGO_SUPERUSER_USERNAME", "DJANGO_SUPERUSER_PASSWORD", "DJANGO_SUPERUSER_EMAIL"}
    assert read - listed == set()
    assert listed - read == createsuperuser  # read by Django's createsuperuser (docker/init.sh)
