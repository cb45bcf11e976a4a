"""Managed-Kafka authentication: the client options every Kafka client gets, the OAUTHBEARER
token providers (client credentials against a real HTTP endpoint; MSK IAM from static AWS
credentials), and how a refusal is named."""

from __future__ import annotations

import asyncio
import base64
import datetime
import json
import ssl
import urllib.parse

import pytest
from aiokafka.errors import KafkaConnectionError, SaslAuthenticationFailed
from hypothesis import given
from hypothesis import strategies as st

from crm_events.config import KafkaConfig, KafkaSecurity, OAuthClient
from crm_events.kafka import diagnosis, tokens
from crm_events.kafka.clients import connection_options, token_provider
from crm_events.kafka.tokens import (
    ClientCredentialsTokenProvider,
    MskIamTokenProvider,
    TokenError,
)
from scripts.servers import free_port
from tests.support.certificates import TestAuthority
from tests.support.token_endpoint import TokenEndpoint


def kafka(security: KafkaSecurity) -> KafkaConfig:
    return KafkaConfig(brokers=("k:9093",), topics=("t",), group="g", offset_reset="earliest",
                       topic_partitions=1, topic_replication=1, retry_backoff_max=1, batch_max_records=1,
                       security=security)


@pytest.fixture
def endpoint():
    running = TokenEndpoint({"svc": "s3cret:/+ x"}, lifetime=100).start()
    yield running
    running.stop()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_oauthbearer_options_share_one_provider_per_process():
    oauth = OAuthClient("https://idp.example/token", "svc", "secret", "kafka")
    security = KafkaSecurity(protocol="SASL_SSL", sasl_mechanism="OAUTHBEARER", oauth=oauth)
    first, second = connection_options(kafka(security)), connection_options(kafka(security))
    assert first["sasl_mechanism"] == "OAUTHBEARER"
    assert isinstance(first["sasl_oauth_token_provider"], ClientCredentialsTokenProvider)
    assert first["sasl_oauth_token_provider"] is second["sasl_oauth_token_provider"]
    assert "sasl_plain_password" not in first
    assert "secret" not in repr(security)


def test_msk_iam_is_oauthbearer_with_the_signer_as_provider():
    security = KafkaSecurity(protocol="SASL_SSL", sasl_mechanism="AWS_MSK_IAM", aws_region="eu-west-1")
    options = connection_options(kafka(security))
    assert options["sasl_mechanism"] == "OAUTHBEARER"
    provider = options["sasl_oauth_token_provider"]
    assert isinstance(provider, MskIamTokenProvider) and provider.region == "eu-west-1"
    assert security.describe() == "SASL_SSL AWS_MSK_IAM region=eu-west-1"


def test_msk_iam_token_is_a_presigned_url_from_static_credentials(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLETESTKEY01")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
    for name in ("AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    provider = MskIamTokenProvider("eu-west-1")
    token = asyncio.run(provider.token())
    url = urllib.parse.urlsplit(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode())
    query = dict(urllib.parse.parse_qsl(url.query))
    assert (url.scheme, url.netloc) == ("https", "kafka.eu-west-1.amazonaws.com")
    assert query["Action"] == "kafka-cluster:Connect"
    assert query["X-Amz-Algorithm"] == "AWS4-HMAC-SHA256"
    key_id, _day, region, service, terminator = query["X-Amz-Credential"].split("/")
    assert (key_id, region, service, terminator) == ("AKIDEXAMPLETESTKEY01", "eu-west-1", "kafka-cluster",
                                                     "aws4_request")
    assert len(query["X-Amz-Signature"]) == 64 and int(query["X-Amz-Signature"], 16) >= 0
    assert asyncio.run(provider.token()) == token and provider.fetches == 1  # reused while young


def test_msk_iam_without_credentials_is_a_named_token_error(monkeypatch):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.delenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", raising=False)
    monkeypatch.delenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", raising=False)
    monkeypatch.delenv("AWS_WEB_IDENTITY_TOKEN_FILE", raising=False)
    with pytest.raises(TokenError) as raised:
        asyncio.run(MskIamTokenProvider("eu-west-1").token())
    assert str(raised.value.args[0]).startswith("AWS MSK IAM could not sign a token for region eu-west-1: ")


def test_client_credentials_token_is_fetched_once_and_refreshed_before_expiry(endpoint):
    clock = Clock()
    provider = ClientCredentialsTokenProvider(OAuthClient(endpoint.url, "svc", "s3cret:/+ x", "kafka"), clock)

    async def run() -> list[str]:
        first = await asyncio.gather(*(provider.token() for _ in range(5)))  # one fetch for all
        clock.now += 100 * tokens.REFRESH_FACTOR - 0.01
        young = await provider.token()
        clock.now += 0.01
        refreshed = await provider.token()
        return [*first, young, refreshed]

    got = asyncio.run(run())
    assert len(set(got[:6])) == 1
    assert provider.fetches == 2 and len(endpoint.issued) == 2
    assert endpoint.issued[0] == {"grant_type": "client_credentials", "scope": "kafka"}


def test_a_refused_client_is_one_named_error(endpoint):
    provider = ClientCredentialsTokenProvider(OAuthClient(endpoint.url, "svc", "wrong"))
    with pytest.raises(TokenError) as raised:
        asyncio.run(provider.token())
    assert raised.value.args[0] == tokens.TOKEN_REFUSED.format(
        url=endpoint.url, client_id="svc", status=401, detail="invalid_client bad client credentials")


def test_an_unreachable_endpoint_is_named():
    url = f"http://127.0.0.1:{free_port()}/token"
    with pytest.raises(TokenError) as raised:
        asyncio.run(ClientCredentialsTokenProvider(OAuthClient(url, "svc", "s")).token())
    assert raised.value.args[0].startswith(tokens.TOKEN_UNREACHABLE.format(url=url, reason=""))


@given(st.one_of(st.binary(max_size=64), st.dictionaries(st.text(max_size=8), st.integers(), max_size=3)
                 .map(lambda d: str(d).replace("'", '"').encode())))
def test_an_answer_without_access_token_is_malformed(body):
    with pytest.raises(TokenError) as raised:
        tokens.token_answer_parse("https://idp/token", body)
    assert raised.value.args[0].startswith("the OAuth token endpoint https://idp/token answered without")


@pytest.mark.parametrize(("expires_in", "lifetime"), [(60, 60.0), (None, tokens.DEFAULT_LIFETIME),
                                                        (-5, tokens.DEFAULT_LIFETIME),
                                                        (True, tokens.DEFAULT_LIFETIME)])
def test_token_lifetime(expires_in, lifetime):
    answer = {"access_token": "t", **({"expires_in": expires_in} if expires_in is not None else {})}
    assert tokens.token_answer_parse("u", json.dumps(answer).encode()) == ("t", lifetime)


def test_an_encrypted_client_key_is_opened_with_its_password(tmp_path):
    authority = TestAuthority(tmp_path)
    client = authority.client("svc", key_password="kp")
    security = KafkaSecurity(protocol="SSL", ssl_cafile=str(authority.cafile),
                             ssl_certfile=str(client.certfile), ssl_keyfile=str(client.keyfile),
                             ssl_key_password="kp")
    assert isinstance(connection_options(kafka(security))["ssl_context"], ssl.SSLContext)
    assert "kp" not in repr(security)
    with pytest.raises(ssl.SSLError):  # a wrong password: consume_events refuses to start on it
        connection_options(kafka(KafkaSecurity(
            protocol="SSL", ssl_certfile=str(client.certfile), ssl_keyfile=str(client.keyfile),
            ssl_key_password="wrong")))


SCRAM = KafkaSecurity(protocol="SASL_SSL", sasl_mechanism="SCRAM-SHA-512", sasl_username="svc",
                      sasl_password="p")


def test_refusals_are_named_through_the_cause_chain():
    refused = SaslAuthenticationFailed("Authentication failed: invalid credentials")
    wrapped = KafkaConnectionError("Connection at k:9093 closed")
    wrapped.__cause__ = refused
    assert diagnosis.cause_name(wrapped, SCRAM) == diagnosis.CREDENTIALS_REFUSED.format(
        security="SASL_SSL SCRAM-SHA-512 user=svc", detail="Authentication failed: invalid credentials")
    assert diagnosis.cause_name(KafkaConnectionError("Unable to bootstrap from []"), SCRAM) is None
    assert diagnosis.cause_name(ConnectionRefusedError(111, "refused"), SCRAM) is None
    untrusted = ssl.SSLCertVerificationError(1, "certificate verify failed")
    untrusted.verify_message = "self-signed certificate in certificate chain"
    assert diagnosis.cause_name(untrusted, SCRAM) == diagnosis.SERVER_CERT_UNTRUSTED.format(
        detail="self-signed certificate in certificate chain")
    token = TokenError("the OAuth token endpoint u refused the client svc: HTTP 401 invalid_client")
    assert diagnosis.cause_name(token, SCRAM) == diagnosis.TOKEN_FAILED.format(
        security="SASL_SSL SCRAM-SHA-512 user=svc", detail=token.args[0])


def test_a_refused_certificate_is_refined_by_its_validity(tmp_path):
    authority = TestAuthority(tmp_path)
    expired, valid = authority.client("old", expired=True), authority.client("new")
    alert = ssl.SSLError(1, "[SSL: SSLV3_ALERT_BAD_CERTIFICATE] sslv3 alert bad certificate")
    alert.reason = "SSLV3_ALERT_BAD_CERTIFICATE"

    def mtls(client=None) -> KafkaSecurity:
        files = {"ssl_certfile": str(client.certfile), "ssl_keyfile": str(client.keyfile)} if client else {}
        return KafkaSecurity(protocol="SSL", **files)

    assert diagnosis.cause_name(alert, mtls()) == diagnosis.CLIENT_CERT_MISSING.format(
        detail="SSLV3_ALERT_BAD_CERTIFICATE")
    assert diagnosis.cause_name(alert, mtls(valid)) == diagnosis.CLIENT_CERT_REFUSED.format(
        detail="SSLV3_ALERT_BAD_CERTIFICATE")
    named = diagnosis.cause_name(alert, mtls(expired))
    assert named is not None and named.startswith(
        f"our client certificate KAFKA_SSL_CERTFILE {expired.certfile} expired on ")
    later = datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=40)
    assert diagnosis.client_certificate_problem(mtls(valid), later).startswith(  # type: ignore[union-attr]
        f"our client certificate KAFKA_SSL_CERTFILE {valid.certfile} is valid only from ")


def test_token_provider_needs_the_oauth_client():
    with pytest.raises(ValueError, match="KAFKA_OAUTH_"):
        token_provider(KafkaSecurity(protocol="SASL_SSL", sasl_mechanism="OAUTHBEARER"))


WRAPPERS = st.sampled_from([KafkaConnectionError, ConnectionResetError, TimeoutError, RuntimeError])


@given(st.lists(WRAPPERS, max_size=6), st.booleans(), st.booleans())
def test_a_refusal_anywhere_in_the_chain_is_named_and_nothing_else_is(wrappers, refused, by_context):
    """However deep aiokafka and asyncio wrap it (as cause or as context), the refusal is found;
    a chain without one (a broker down, a timeout) is never called a refusal."""
    error: BaseException = SaslAuthenticationFailed("bad password") if refused else OSError(111, "refused")
    for wrapper in wrappers:
        outer = wrapper("wrapped")
        if by_context:
            outer.__context__ = error
        else:
            outer.__cause__ = error
        error = outer
    expected = diagnosis.CREDENTIALS_REFUSED.format(security=SCRAM.describe(), detail="bad password")
    assert diagnosis.cause_name(error, SCRAM) == (expected if refused else None)
