"""The service against a secured Kafka: SASL_SSL with SCRAM-SHA-512, mTLS (an encrypted client
key with its password), and OAUTHBEARER with the client-credentials flow against a token
endpoint of the test's own. For each: the consumer and the web process connect, records
stream to an SSE client, a client resumes with Last-Event-ID; and wrong credentials (a wrong
password, an expired certificate, a refused client secret, a token the broker refuses) are
one log line naming the cause and the reason `/status` gives, never aiokafka's `Unable to
bootstrap`.

One broker serves all three listeners (tests/support/secured_kafka.py).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509

from crm_events.ingest.publisher import KAFKA_REFUSED_LOG
from crm_events.kafka import diagnosis
from crm_events.kafka.tokens import TOKEN_REFUSED
from crm_events.ops.readiness import KAFKA_REFUSES
from scripts.servers import RedisServer, free_port
from tests.integration.conftest import Stack, json_values, produce, topic_create
from tests.support.certificates import ClientCertificate, TestAuthority
from tests.support.processes import http_get, service_env, wait_until
from tests.support.secured_kafka import OAUTH_SCOPE, SecuredKafkaServer
from tests.support.sse_client import SseConnection
from tests.support.token_endpoint import TokenEndpoint

SCRAM_PASSWORD = "scram-" + uuid.uuid4().hex
CLIENT_SECRET = "client-secret-" + uuid.uuid4().hex
KEY_PASSWORD = "key-password-" + uuid.uuid4().hex
# Short, so a stream of a few seconds outlives tokens: the broker closes a connection whose
# session ended (connections.max.reauth.ms), the client reconnects with a refreshed token.
TOKEN_LIFETIME = 4.0
REAUTH_MS = 3000


@dataclass
class Secured:
    kafka: SecuredKafkaServer
    authority: TestAuthority
    client: ClientCertificate
    expired: ClientCertificate
    tokens: TokenEndpoint


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Secured]:
    directory = tmp_path_factory.mktemp("secured-kafka")
    authority = TestAuthority(directory / "tls")
    tokens = TokenEndpoint({"svc": CLIENT_SECRET}, lifetime=TOKEN_LIFETIME).start()
    server = SecuredKafkaServer(
        port=free_port(), controller_port=free_port(), data_dir=directory / "kafka",
        scram_port=free_port(), mtls_port=free_port(), oauth_port=free_port(),
        keystore=authority.broker_keystore(), cafile=authority.cafile,
        scram_user="svc", scram_password=SCRAM_PASSWORD, oauth_reauth_ms=REAUTH_MS,
    )
    server.start()
    yield Secured(server, authority, authority.client("svc", key_password=KEY_PASSWORD),
                  authority.client("retired", expired=True), tokens)
    server.stop()
    tokens.stop()


def security_env(secured: Secured, listener: str, *, wrong: bool = False) -> dict[str, str]:
    """The KAFKA_* settings for one listener; `wrong`: the credentials that listener refuses."""
    ca = {"KAFKA_SSL_CAFILE": str(secured.authority.cafile)}
    if listener == "scram":
        return {**ca, "KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
                "KAFKA_SASL_USERNAME": "svc", "KAFKA_SASL_PASSWORD": "wrong" if wrong else SCRAM_PASSWORD}
    if listener == "mtls":
        client = secured.expired if wrong else secured.client
        return {**ca, "KAFKA_SECURITY_PROTOCOL": "SSL", "KAFKA_SSL_CERTFILE": str(client.certfile),
                "KAFKA_SSL_KEYFILE": str(client.keyfile), "KAFKA_SSL_KEY_PASSWORD": client.key_password}
    return {**ca, "KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_MECHANISM": "OAUTHBEARER",
            "KAFKA_OAUTH_TOKEN_ENDPOINT": secured.tokens.url, "KAFKA_OAUTH_CLIENT_ID": "svc",
            "KAFKA_OAUTH_CLIENT_SECRET": "wrong" if wrong else CLIENT_SECRET,
            "KAFKA_OAUTH_SCOPE": OAUTH_SCOPE}


async def stack_for(secured: Secured, redis_server: RedisServer, tmp_path: Path, security: dict[str, str],
              listener: str) -> Stack:
    unique = uuid.uuid4().hex[:10]
    topic = f"crm-secured-{unique}"
    await topic_create(secured.kafka.bootstrap, topic)
    env = service_env(
        KAFKA_BROKERS=secured.kafka.listener(listener), KAFKA_TOPIC=topic, KAFKA_GROUP=f"group-{unique}",
        REDIS_URL=redis_server.url, REDIS_PREFIX=f"test-{unique}", KAFKA_RETRY_BACKOFF_MAX="2", **security,
    )
    return Stack(env, tmp_path)


def seqs(connection: SseConnection) -> list[int]:
    payloads = [event.json() for event in connection.parser.events if event.data.startswith("{")]
    return [p["value"]["seq"] for p in payloads if p.get("kind") == "domain_event"]


def last_event_id(connection: SseConnection) -> str:
    ids = [event.id for event in connection.parser.events
           if event.id and event.data.startswith("{") and event.json().get("kind") == "domain_event"]
    return ids[-1]


async def stream_and_resume(secured: Secured, stack: Stack, port: int) -> None:
    topic = stack.env["KAFKA_TOPIC"]
    first = await SseConnection.open("127.0.0.1", port, "/crm-events")
    await first.events_until(lambda events: len(events) >= 1, timeout=15)
    await produce(secured.kafka.bootstrap, topic, json_values(5), partitions=[0] * 5)
    await first.events_until(lambda _: len(seqs(first)) >= 5, timeout=60)
    first.close()
    assert seqs(first) == [0, 1, 2, 3, 4]

    values = [json.dumps({"seq": seq}).encode() for seq in range(5, 8)]
    await produce(secured.kafka.bootstrap, topic, values, partitions=[0] * 3)
    resumed = await SseConnection.open("127.0.0.1", port, "/crm-events",
                                       {"Last-Event-ID": last_event_id(first)})
    await resumed.events_until(lambda _: len(seqs(resumed)) >= 3, timeout=60)
    resumed.close()
    assert seqs(resumed) == [5, 6, 7]  # exactly the records after the last one seen, once


@pytest.mark.parametrize("listener", ["scram", "mtls", "oauth"])
async def test_connect_stream_and_resume(listener, secured, redis_server, tmp_path):
    stack = await stack_for(secured, redis_server, tmp_path, security_env(secured, listener), listener)
    try:
        stack.consumer()
        _daphne, port = stack.daphne()
        stack.wait_ready(port)  # /status: the web process's own Kafka clients got in too
        await stream_and_resume(secured, stack, port)
    finally:
        stack.stop_all()


async def test_oauth_tokens_are_refreshed_while_streaming(secured, redis_server, tmp_path):
    """Tokens live TOKEN_LIFETIME seconds and the broker ends sessions after REAUTH_MS: records
    keep arriving across several token lifetimes, on tokens fetched again and again."""
    stack = await stack_for(secured, redis_server, tmp_path, security_env(secured, "oauth"), "oauth")
    try:
        stack.consumer()
        _daphne, port = stack.daphne()
        stack.wait_ready(port)
        topic = stack.env["KAFKA_TOPIC"]
        connection = await SseConnection.open("127.0.0.1", port, "/crm-events")
        await connection.events_until(lambda events: len(events) >= 1, timeout=15)
        fetched = len(secured.tokens.issued)
        for batch in range(2):
            wait_until(lambda b=batch: len(secured.tokens.issued) >= fetched + 2 * (b + 1), timeout=30,
                       what="tokens fetched again after their lifetime")
            values = [json.dumps({"seq": seq}).encode() for seq in range(batch * 2, batch * 2 + 2)]
            await produce(secured.kafka.bootstrap, topic, values, partitions=[0, 0])
            await connection.events_until(lambda _, b=batch: len(seqs(connection)) >= 2 * (b + 1), timeout=60)
        connection.close()
        assert seqs(connection) == [0, 1, 2, 3]
        assert {form["scope"] for form in secured.tokens.issued} == {OAUTH_SCOPE}
    finally:
        stack.stop_all()


def refusal(secured: Secured, listener: str, security: dict[str, str]) -> str:
    """The cause `failure_explain` names for the wrong credentials of each case."""
    if listener == "scram":
        described = "SASL_SSL SCRAM-SHA-512 user=svc"
        return diagnosis.CREDENTIALS_REFUSED.format(
            security=described, detail="Authentication failed during authentication due to invalid "
            "credentials with SASL mechanism SCRAM-SHA-512")
    if listener == "mtls":
        certificate = secured.expired.certfile
        after = x509.load_pem_x509_certificate(certificate.read_bytes()).not_valid_after_utc
        return diagnosis.CLIENT_CERT_EXPIRED.format(path=certificate, date=after)
    described = f"SASL_SSL OAUTHBEARER client=svc endpoint={secured.tokens.url}"
    return diagnosis.TOKEN_FAILED.format(security=described, detail=TOKEN_REFUSED.format(
        url=secured.tokens.url, client_id="svc", status=401, detail="invalid_client bad client credentials"))


def status_kafka(port: int) -> str | None:
    status, body = http_get(port, "/status")
    return body["checks"]["kafka"] if status == 503 else None


async def refused_case(secured: Secured, stack: Stack, expected: str) -> None:
    consumer = stack.consumer()
    wait_until(lambda: expected in consumer.log_text(), timeout=60, what="the refusal logged")
    _daphne, port = stack.daphne()
    wait_until(lambda: status_kafka(port) == KAFKA_REFUSES.format(expected), timeout=60,
               what="/status names the refusal")
    brokers = stack.env["KAFKA_BROKERS"]
    refused_lines = [line for line in consumer.log_text().splitlines()
                     if KAFKA_REFUSED_LOG.split("%s")[0] + brokers in line]
    assert refused_lines and all(expected in line for line in refused_lines)
    assert not any("Unable to bootstrap" in line for line in refused_lines)


@pytest.mark.parametrize("listener", ["scram", "mtls", "oauth"])
async def test_wrong_credentials_are_named(listener, secured, redis_server, tmp_path):
    security = security_env(secured, listener, wrong=True)
    stack = await stack_for(secured, redis_server, tmp_path, security, listener)
    try:
        await refused_case(secured, stack, refusal(secured, listener, security))
    finally:
        stack.stop_all()


async def test_a_token_the_broker_refuses_is_named(secured, redis_server, tmp_path):
    """The token endpoint issues a token; the broker's validator refuses it (not the scope it needs)."""
    security = {**security_env(secured, "oauth"), "KAFKA_OAUTH_SCOPE": "reports"}
    stack = await stack_for(secured, redis_server, tmp_path, security, "oauth")
    described = f"SASL_SSL OAUTHBEARER client=svc endpoint={secured.tokens.url}"
    expected = diagnosis.TOKEN_REFUSED_BY_KAFKA.format(security=described, detail="")
    try:
        consumer = stack.consumer()
        wait_until(lambda: expected in consumer.log_text(), timeout=60, what="the refused token logged")
        _daphne, port = stack.daphne()
        wait_until(lambda: (status_kafka(port) or "").startswith(KAFKA_REFUSES.format(expected)), timeout=60,
                   what="/status names the refused token")
        reason = status_kafka(port) or ""
        # The broker's RFC 7628 error challenge, as it sent it: JSON naming the status and scope.
        challenge = json.loads(reason.removeprefix(KAFKA_REFUSES.format(expected)))
        assert challenge["status"] == "insufficient_scope", challenge
    finally:
        stack.stop_all()
