"""Secrets are read as written: from a key file less one trailing line end, and never as a
`$NAME` reference to another variable. Each case imports the settings in a fresh interpreter."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from crm_events.config import REDIS_URL_SCHEME
from tests.support.processes import ROOT

PRINT = (
    "import json; from aetherlink import settings as s; print(json.dumps({"
    "'secret_key': s.SECRET_KEY, 'jwt_key': s.SSE_JWT_KEY, 'sasl_password': s.KAFKA_SASL_PASSWORD,"
    " 'metrics_token': s.METRICS_TOKEN, 'db_password': s.DATABASES['default'].get('PASSWORD'),"
    " 'redis': s.REDIS_URL, 'sentinel_password': s.REDIS_SENTINEL_PASSWORD, 'group': s.KAFKA_GROUP,"
    " 'key_password': s.KAFKA_SSL_KEY_PASSWORD, 'oauth_secret': s.KAFKA_OAUTH_CLIENT_SECRET,"
    " 'registry_auth': s.SCHEMA_REGISTRY_BASIC_AUTH, 'registry_token': s.SCHEMA_REGISTRY_BEARER_TOKEN}))"
)
KEY = "0123456789abcdef" * 4  # what `openssl rand -hex 32` writes, before its newline


def load(**overrides: str | None) -> subprocess.CompletedProcess:
    """The settings with `overrides` in the environment (None: unset); `DJANGO_SECRET_KEY` is `k`
    unless given."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("KAFKA_", "DJANGO_", "REDIS", "SSE_", "METRICS", "DATABASE", "AETHERLINK_"))}
    for name, value in {"DJANGO_SECRET_KEY": "k", "PYTHONPATH": str(ROOT), **overrides}.items():
        if value is not None:
            env[name] = value
    return subprocess.run([sys.executable, "-c", PRINT], cwd=ROOT / "tests", env=env,
                          capture_output=True, text=True, timeout=60)


def loaded(**overrides: str | None) -> dict:
    result = load(**overrides)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.mark.parametrize(
    ("content", "secret"),
    [
        (KEY.encode() + b"\n", KEY),
        (KEY.encode() + b"\r\n", KEY),
        (KEY.encode() + b"\n\n", KEY + "\n"),  # only one line end is taken off
        (KEY.encode() + b"\r\n\r\n", KEY + "\r\n"),
        (KEY.encode(), KEY),
        (KEY.encode() + b"\r", KEY + "\r"),  # a lone CR ends no line: kept, as any other byte
        (b"\r\r" + KEY.encode() + b"\rx\n", "\r\r" + KEY + "\rx"),  # no newline translation inside
    ],
    ids=["lf", "crlf", "two-lf", "two-crlf", "none", "lone-cr", "inner-cr"],
)
def test_a_key_file_loses_exactly_one_trailing_line_end(tmp_path: Path, content: bytes, secret: str):
    key_file = tmp_path / "key"
    key_file.write_bytes(content)
    assert loaded(SSE_AUTH_MODE="jwt", SSE_JWT_KEY_FILE=str(key_file))["jwt_key"] == secret


def test_a_key_file_that_is_not_text_is_refused_by_name(tmp_path: Path):
    key_file = tmp_path / "key"
    key_file.write_bytes(b"\xff\xfe" * 20)
    result = load(SSE_AUTH_MODE="jwt", SSE_JWT_KEY_FILE=str(key_file))
    assert result.returncode != 0
    assert result.stderr.strip().splitlines()[-1].endswith(
        f"SSE_JWT_KEY_FILE points to {str(key_file)!r}, which does not hold UTF-8 text.")


SECRETS_WITH_DOLLARS = {
    "DJANGO_SECRET_KEY": "$KAFKA_GROUP",  # names a variable that exists: still not read through it
    "SSE_JWT_KEY": "$$" + KEY,
    "KAFKA_SASL_PASSWORD": "$ecret",
    "METRICS_TOKEN": "$METRICS",
    "DATABASE_URL": "postgres://u:$p@db:5432/crm",  # the `$` inside was never the problem: kept
    "REDIS_URL": "redis+sentinel://:$pw@s:26379/m/0",
    "REDIS_SENTINEL_PASSWORD": "$OTHER_REDIS_URL",
}


def test_secrets_starting_with_a_dollar_are_taken_literally():
    env = {**SECRETS_WITH_DOLLARS, "KAFKA_GROUP": "a-group", "OTHER_REDIS_URL": "redis://elsewhere:1/0",
           "KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT", "KAFKA_SASL_USERNAME": "u"}
    values = loaded(**env)
    assert (values["secret_key"], values["jwt_key"], values["sasl_password"], values["metrics_token"],
            values["db_password"], values["redis"], values["sentinel_password"]) == (
        "$KAFKA_GROUP", "$$" + KEY, "$ecret", "$METRICS", "$p", "redis+sentinel://:$pw@s:26379/m/0",
        "$OTHER_REDIS_URL")


def test_kafka_key_password_and_oauth_secret_are_taken_literally(tmp_path: Path):
    key = tmp_path / "client.key"
    key.write_text("not read by the settings")
    values = loaded(KAFKA_SECURITY_PROTOCOL="SASL_SSL", KAFKA_SASL_MECHANISM="OAUTHBEARER",
                    KAFKA_OAUTH_TOKEN_ENDPOINT="https://idp/token", KAFKA_OAUTH_CLIENT_ID="svc",
                    KAFKA_OAUTH_CLIENT_SECRET="$KAFKA_GROUP", KAFKA_SSL_CERTFILE=str(key),
                    KAFKA_SSL_KEYFILE=str(key), KAFKA_SSL_KEY_PASSWORD="$$kp", KAFKA_GROUP="a-group")
    assert (values["oauth_secret"], values["key_password"]) == ("$KAFKA_GROUP", "$$kp")


def test_schema_registry_credentials_are_taken_literally():
    values = loaded(SCHEMA_REGISTRY_BASIC_AUTH="$KAFKA_GROUP:pw", KAFKA_GROUP="a-group")
    assert values["registry_auth"] == "$KAFKA_GROUP:pw"
    assert loaded(SCHEMA_REGISTRY_BEARER_TOKEN="$$t")["registry_token"] == "$$t"


def test_a_redis_url_starting_with_a_dollar_is_taken_literally_and_so_refused():
    result = load(REDIS_URL="$OTHER_REDIS_URL", OTHER_REDIS_URL="redis://elsewhere:1/0")
    assert result.returncode != 0
    assert result.stderr.strip().splitlines()[-1].endswith(REDIS_URL_SCHEME)


def test_a_dollar_secret_key_is_read_literally_from_a_dotenv_file_too(tmp_path: Path):
    dotenv = tmp_path / "site.env"
    dotenv.write_text("DJANGO_SECRET_KEY='$not-a-reference'\nMETRICS_TOKEN=$alsoLiteral\n")
    values = loaded(AETHERLINK_ENV_FILE=str(dotenv), DJANGO_SECRET_KEY=None)
    assert (values["secret_key"], values["metrics_token"]) == ("$not-a-reference", "$alsoLiteral")


def test_other_settings_keep_django_environs_reference():
    assert loaded(KAFKA_GROUP="$TEAM_GROUP", TEAM_GROUP="team-7")["group"] == "team-7"
