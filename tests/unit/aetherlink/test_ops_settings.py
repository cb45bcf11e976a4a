"""Start-up validation of the security and operations settings, in fresh interpreters."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from crm_events.config import KafkaConfig, KafkaSecurity
from crm_events.kafka.clients import connection_options
from tests.support.certificates import TestAuthority
from tests.support.processes import ROOT

PRINT = (
    "import json; from aetherlink import settings as s; print(json.dumps({"
    "'auth': s.SSE_AUTH_MODE, 'protocol': s.KAFKA_SECURITY_PROTOCOL, 'cors_all': s.CORS_ALLOW_ALL_ORIGINS,"
    " 'cors': s.CORS_ALLOWED_ORIGINS, 'cors_credentials': s.CORS_ALLOW_CREDENTIALS,"
    " 'log_format': s.LOG_FORMAT, 'canary': s.CANARY_INTERVAL,"
    " 'metrics_networks': s.METRICS_ALLOWED_NETWORKS, 'consumer_metrics_address': s.CONSUMER_METRICS_ADDRESS,"
    " 'handler': s.LOGGING['handlers']['console']}))"
)
HS_KEY = "k" * 32


def load(code: str = PRINT, **overrides: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("KAFKA_", "DJANGO_", "REDIS", "SSE_", "CORS", "METRICS", "CANARY", "LOG_",
                                "CONSUMER_"))}
    env.update(DJANGO_SECRET_KEY="k", PYTHONPATH=str(ROOT), **overrides)
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT / "tests", env=env,
                          capture_output=True, text=True, timeout=60)


def test_defaults():
    result = load()
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {
        "auth": "none", "protocol": "PLAINTEXT", "cors_all": False, "cors": [], "cors_credentials": True,
        "log_format": "plain", "canary": 0.0, "metrics_networks": ["127.0.0.0/8", "::1/128"],
        "consumer_metrics_address": "127.0.0.1",
        "handler": {"class": "logging.StreamHandler", "formatter": "plain", "filters": ["redact"]},
    }


def test_cors_lists_and_star():
    listed = json.loads(load(SSE_CORS_ORIGINS="https://a.example,https://b.example").stdout)
    assert (listed["cors_all"], listed["cors"], listed["cors_credentials"]) == (
        False, ["https://a.example", "https://b.example"], True)
    star = json.loads(load(SSE_CORS_ORIGINS="*").stdout)
    assert (star["cors_all"], star["cors"], star["cors_credentials"]) == (True, [], False)


def ec_public_pem() -> str:
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    pem = key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return pem.decode()


def test_jwt_key_from_a_file(tmp_path):
    pem = tmp_path / "jwt.pem"
    pem.write_text(ec_public_pem())
    result = load(SSE_AUTH_MODE="jwt", SSE_JWT_ALGORITHM="ES256", SSE_JWT_KEY_FILE=str(pem))
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"SSE_AUTH_MODE": "basic"}, "SSE_AUTH_MODE must be one of none, session, jwt, got 'basic'."),
        ({"SSE_AUTH_MODE": "jwt"}, "SSE_AUTH_MODE=jwt needs SSE_JWT_KEY or SSE_JWT_KEY_FILE."),
        ({"SSE_AUTH_MODE": "jwt", "SSE_JWT_KEY": "short"}, "SSE_JWT_KEY for HS256 must be at least 32 bytes"),
        ({"SSE_AUTH_MODE": "jwt", "SSE_JWT_ALGORITHM": "RS256", "SSE_JWT_KEY": HS_KEY},
         "SSE_JWT_KEY for RS256 must be a PEM RSA public key."),
        ({"SSE_AUTH_MODE": "jwt", "SSE_JWT_KEY_FILE": "/nonexistent.pem"},
         "SSE_JWT_KEY_FILE points to '/nonexistent.pem', which is not a readable file."),
        ({"SSE_CORS_ORIGINS": "*", "SSE_AUTH_MODE": "jwt", "SSE_JWT_KEY": HS_KEY},
         "SSE_CORS_ORIGINS=* (any origin) is only allowed alone and with SSE_AUTH_MODE=none"),
        ({"KAFKA_SECURITY_PROTOCOL": "TLS"},
         "KAFKA_SECURITY_PROTOCOL must be one of PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL, got 'TLS'."),
        ({"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_USERNAME": "svc"},
         "KAFKA_SECURITY_PROTOCOL=SASL_SSL with KAFKA_SASL_MECHANISM=PLAIN needs KAFKA_SASL_USERNAME "
         "and KAFKA_SASL_PASSWORD."),
        ({"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_MECHANISM": "OAUTHBEARER",
          "KAFKA_OAUTH_TOKEN_ENDPOINT": "https://idp/token", "KAFKA_OAUTH_CLIENT_ID": "svc"},
         "KAFKA_SASL_MECHANISM=OAUTHBEARER needs KAFKA_OAUTH_TOKEN_ENDPOINT, KAFKA_OAUTH_CLIENT_ID "
         "and KAFKA_OAUTH_CLIENT_SECRET"),
        ({"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_MECHANISM": "OAUTHBEARER",
          "KAFKA_OAUTH_TOKEN_ENDPOINT": "idp/token", "KAFKA_OAUTH_CLIENT_ID": "svc",
          "KAFKA_OAUTH_CLIENT_SECRET": "s"},
         "KAFKA_OAUTH_TOKEN_ENDPOINT must be an https:// (or http://) URL, not 'idp/token'."),
        ({"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_MECHANISM": "OAUTHBEARER",
          "KAFKA_SASL_USERNAME": "svc", "KAFKA_SASL_PASSWORD": "pw"},
         "KAFKA_SASL_USERNAME/KAFKA_SASL_PASSWORD are set but KAFKA_SECURITY_PROTOCOL is SASL_SSL and "
         "KAFKA_SASL_MECHANISM OAUTHBEARER"),
        ({"KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT", "KAFKA_SASL_MECHANISM": "AWS_MSK_IAM",
          "KAFKA_AWS_REGION": "eu-west-1"},
         "KAFKA_SASL_MECHANISM=AWS_MSK_IAM needs KAFKA_SECURITY_PROTOCOL=SASL_SSL and KAFKA_AWS_REGION"),
        ({"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_MECHANISM": "AWS_MSK_IAM"},
         "KAFKA_SASL_MECHANISM=AWS_MSK_IAM needs KAFKA_SECURITY_PROTOCOL=SASL_SSL and KAFKA_AWS_REGION"),
        ({"KAFKA_SECURITY_PROTOCOL": "SSL", "KAFKA_SSL_KEY_PASSWORD": "pw"},
         "KAFKA_SSL_KEY_PASSWORD is set but KAFKA_SSL_KEYFILE is not: it decrypts that key."),
        ({"KAFKA_SASL_USERNAME": "svc", "KAFKA_SASL_PASSWORD": "pw"},
         "KAFKA_SASL_USERNAME/KAFKA_SASL_PASSWORD are set but KAFKA_SECURITY_PROTOCOL is PLAINTEXT"),
        ({"KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT", "KAFKA_SASL_MECHANISM": "GSSAPI",
          "KAFKA_SASL_USERNAME": "svc", "KAFKA_SASL_PASSWORD": "pw"},
         "KAFKA_SASL_MECHANISM must be one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, OAUTHBEARER, AWS_MSK_IAM, "
         "got 'GSSAPI'."),
        ({"KAFKA_SECURITY_PROTOCOL": "SSL", "KAFKA_SSL_CAFILE": "/missing/ca.pem"},
         "KAFKA_SSL_CAFILE points to '/missing/ca.pem', which is not a readable file."),
        ({"TRUSTED_PROXIES": "10.0.0.0/8,nginx"}, "TRUSTED_PROXIES must list IP networks like 10.0.0.0/8"),
        ({"LOG_FORMAT": "xml"}, "LOG_FORMAT must be one of plain, json, got 'xml'."),
        ({"CONSUMER_METRICS_ADDRESS": "localhost"},
         "CONSUMER_METRICS_ADDRESS must be an IP address like 127.0.0.1, ::1 or 0.0.0.0 (every interface), "
         "got 'localhost'."),
        ({"CANARY_INTERVAL": "30", "CANARY_MAX_AGE": "10"},
         "CANARY_MAX_AGE (10.0) must be longer than CANARY_INTERVAL (30.0)."),
    ],
)
def test_bad_settings_fail_at_start(overrides, message):
    result = load(**overrides)
    assert result.returncode != 0
    assert message in result.stderr


def kafka(security: KafkaSecurity) -> KafkaConfig:
    return KafkaConfig(brokers=("k:9093",), topics=("t",), group="g", offset_reset="earliest",
                       topic_partitions=1, topic_replication=1, retry_backoff_max=1, batch_max_records=1,
                       security=security)


def test_connection_options_per_protocol(tmp_path):
    assert connection_options(kafka(KafkaSecurity())) == {
        "bootstrap_servers": "k:9093", "security_protocol": "PLAINTEXT",
    }
    sasl = KafkaSecurity(protocol="SASL_PLAINTEXT", sasl_mechanism="SCRAM-SHA-512",
                         sasl_username="svc", sasl_password="pw")
    assert connection_options(kafka(sasl)) == {
        "bootstrap_servers": "k:9093", "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "SCRAM-SHA-512", "sasl_plain_username": "svc", "sasl_plain_password": "pw",
    }
    options = connection_options(kafka(KafkaSecurity(protocol="SASL_SSL", sasl_username="svc",
                                                     sasl_password="pw")))
    assert options["security_protocol"] == "SASL_SSL"
    assert options["ssl_context"].verify_mode.name == "CERT_REQUIRED"
    assert "pw" not in repr(kafka(sasl))


def test_unusable_tls_files_fail_consume_events_with_a_clear_message(tmp_path):
    bogus = tmp_path / "ca.pem"
    bogus.write_text("not a certificate")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KAFKA_", "DJANGO_"))}
    env.update(DJANGO_SECRET_KEY="k", KAFKA_SECURITY_PROTOCOL="SSL", KAFKA_SSL_CAFILE=str(bogus),
               REDIS_URL="redis://127.0.0.1:1/0")
    result = subprocess.run([sys.executable, "manage.py", "consume_events"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "The Kafka TLS files (KAFKA_SSL_CAFILE, KAFKA_SSL_CERTFILE, KAFKA_SSL_KEYFILE) are unusable" in (
        result.stderr)


def test_a_wrong_key_password_fails_consume_events_with_a_clear_message(tmp_path):
    client = TestAuthority(tmp_path).client("svc", key_password="right")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KAFKA_", "DJANGO_"))}
    env.update(DJANGO_SECRET_KEY="k", KAFKA_SECURITY_PROTOCOL="SSL", KAFKA_SSL_CERTFILE=str(client.certfile),
               KAFKA_SSL_KEYFILE=str(client.keyfile), KAFKA_SSL_KEY_PASSWORD="wrong",
               REDIS_URL="redis://127.0.0.1:1/0")
    result = subprocess.run([sys.executable, "manage.py", "consume_events"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "or KAFKA_SSL_KEY_PASSWORD does not open the key: " in result.stderr
    assert "wrong" not in result.stderr


def test_a_taken_metrics_port_fails_consume_events_with_the_address_and_port():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {k: v for k, v in os.environ.items() if not k.startswith(("KAFKA_", "DJANGO_", "CONSUMER_"))}
        env.update(DJANGO_SECRET_KEY="k", CONSUMER_METRICS_PORT=str(port), REDIS_URL="redis://127.0.0.1:1/0")
        result = subprocess.run([sys.executable, "manage.py", "consume_events"], cwd=ROOT, env=env,
                                capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert f"Cannot serve consumer metrics on 127.0.0.1 port {port} " in result.stderr


GRANT_TEMPLATE_INVALID = (
    "SSE_JWT_GRANT_TEMPLATE must be a JSON object whose keys are among topic, kind, key, key_base64, "
    "partition, where and whose values are non-empty lists of non-empty strings (claims named as {{claim}}), "
    "got {text!r}."
)


def test_a_grant_template_is_read_at_start():
    template = '{"where": ["tenant_id:{tenant}"], "kind": ["deal"]}'
    result = load("from aetherlink import settings as s; print(s.SSE_JWT_GRANT_TEMPLATE)",
                  SSE_JWT_GRANT_TEMPLATE=template)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "{'where': ('tenant_id:{tenant}',), 'kind': ('deal',)}"


@pytest.mark.parametrize("text", [
    "tenant_id:{tenant}", "[]", "{}", '{"tenant": ["{tenant}"]}', '{"where": []}', '{"where": "x:{t}"}',
    '{"where": [""]}', '{"where": ["tenant_id:{"]}', '{"where": ["tenant_id:{}"]}', '{"where": ["x:{a}}"]}',
])
def test_a_grant_template_that_is_no_grant_stops_the_start(text):
    result = load(SSE_JWT_GRANT_TEMPLATE=text)
    assert result.returncode != 0
    assert GRANT_TEMPLATE_INVALID.format(text=text) in result.stderr
