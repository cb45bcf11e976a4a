"""Why Kafka will not let a client of ours in, in one sentence naming the cause.

aiokafka turns every failed start into `KafkaConnectionError: Unable to bootstrap from
[...]` and leaves the real cause (a refused password, an untrusted or refused certificate,
a token endpoint that said no) in its own log, one line per broker. Where a client of ours
fails to start, `failure_explain` looks for that cause: in the error's own chain, and else
in one probe connection made with the very same settings through aiokafka's `create_conn`,
which raises the real exception. A TLS refusal is refined by our client certificate's
validity (a broker refusing an expired certificate says only `bad certificate`).
"""

from __future__ import annotations

import asyncio
import datetime
import ssl
from pathlib import Path

from aiokafka.conn import AIOKafkaConnection, create_conn
from aiokafka.errors import (
    IllegalSaslStateError,
    KafkaConnectionError,
    NodeNotReadyError,
    SaslAuthenticationFailed,
    UnsupportedSaslMechanismError,
    for_code,
)
from aiokafka.protocol.admin import SaslAuthenticateRequest, SaslHandShakeRequest
from cryptography import x509

from crm_events.config import KafkaConfig, KafkaSecurity
from crm_events.kafka.clients import security_options
from crm_events.kafka.tokens import TokenError

CREDENTIALS_REFUSED = "Kafka refused the credentials ({security}): {detail}"
MECHANISM_REFUSED = "Kafka does not accept the SASL mechanism ({security}): {detail}"
TOKEN_FAILED = "no OAUTHBEARER token ({security}): {detail}"
TOKEN_REFUSED_BY_KAFKA = "Kafka refused the OAUTHBEARER token ({security}): {detail}"
SERVER_CERT_UNTRUSTED = "Kafka's TLS certificate is not trusted (KAFKA_SSL_CAFILE): {detail}"
CLIENT_CERT_REFUSED = "Kafka refused our client certificate (KAFKA_SSL_CERTFILE): {detail}"
CLIENT_CERT_MISSING = "Kafka requires a client certificate and KAFKA_SSL_CERTFILE is not set: {detail}"
CLIENT_CERT_EXPIRED = "our client certificate KAFKA_SSL_CERTFILE {path} expired on {date}"
CLIENT_CERT_NOT_YET_VALID = "our client certificate KAFKA_SSL_CERTFILE {path} is valid only from {date}"
TLS_FAILED = "TLS with Kafka failed: {detail}"

# The probe is one connection to one broker at a time: its own deadline, short of the callers'.
PROBE_TIMEOUT = 5.0
# TLS alerts a broker sends when it refuses the certificate we presented (OpenSSL's reason names).
_CLIENT_CERT_ALERTS = ("CERTIFICATE_REQUIRED", "BAD_CERTIFICATE", "CERTIFICATE_EXPIRED",
                       "CERTIFICATE_UNKNOWN", "UNKNOWN_CA", "CERTIFICATE_REVOKED", "HANDSHAKE_FAILURE")


def cause_name(error: BaseException, security: KafkaSecurity) -> str | None:
    """The sentence for an error that says why Kafka refused us, looking through its causes;
    None for anything else (a broker down, a timeout)."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        named = _cause_name_one(current, security)
        if named is not None:
            return named
        current = current.__cause__ or current.__context__
    return None


def _cause_name_one(error: BaseException, security: KafkaSecurity) -> str | None:
    described = security.describe()
    if isinstance(error, TokenError):
        return TOKEN_FAILED.format(security=described, detail=_detail(error))
    if isinstance(error, SaslAuthenticationFailed):
        return CREDENTIALS_REFUSED.format(security=described, detail=_detail(error))
    if isinstance(error, UnsupportedSaslMechanismError | IllegalSaslStateError):
        return MECHANISM_REFUSED.format(security=described, detail=_detail(error))
    if isinstance(error, ssl.SSLCertVerificationError):
        return SERVER_CERT_UNTRUSTED.format(detail=error.verify_message or error)
    if isinstance(error, ssl.SSLError):
        reason = str(error.reason or "")
        if not reason.endswith(_CLIENT_CERT_ALERTS):
            return TLS_FAILED.format(detail=reason or error)
        # A broker refusing our certificate says only `bad certificate`: ours may say why.
        if not security.ssl_certfile:
            return CLIENT_CERT_MISSING.format(detail=reason)
        return client_certificate_problem(security) or CLIENT_CERT_REFUSED.format(detail=reason)
    return None


def _detail(error: BaseException) -> str:
    """The broker's message (aiokafka's text less its `[Error 58] SaslAuthenticationFailed: `)."""
    text = " ".join(str(arg) for arg in error.args).strip()
    return text or type(error).__name__


def client_certificate_problem(security: KafkaSecurity, now: datetime.datetime | None = None) -> str | None:
    """Our own certificate out of its validity period: a broker then only says `bad certificate`."""
    if not (security.uses_ssl and security.ssl_certfile):
        return None
    try:
        certificate = x509.load_pem_x509_certificate(Path(security.ssl_certfile).read_bytes())
    except (OSError, ValueError):
        return None  # unreadable files are refused at start (consume_events) with their own message
    now = now or datetime.datetime.now(datetime.UTC)
    path = security.ssl_certfile
    if now > certificate.not_valid_after_utc:
        return CLIENT_CERT_EXPIRED.format(path=path, date=certificate.not_valid_after_utc)
    if now < certificate.not_valid_before_utc:
        return CLIENT_CERT_NOT_YET_VALID.format(path=path, date=certificate.not_valid_before_utc)
    return None


async def connection_probe(config: KafkaConfig) -> str | None:
    """Connect to each broker as our clients do; the named cause of the first refusal, if any."""
    options = security_options(config.security)
    for broker in config.brokers:
        host, _, port = broker.rpartition(":")
        try:
            async with asyncio.timeout(PROBE_TIMEOUT):
                return await _broker_probe(host.strip("[]"), int(port), options, config.security)
        except Exception as error:  # noqa: BLE001 - any failure: named if it is a refusal
            named = cause_name(error, config.security)
        if named is not None:
            return named
    return None


async def _broker_probe(host: str, port: int, options: dict, security: KafkaSecurity) -> str | None:
    if options.get("sasl_mechanism") == "OAUTHBEARER":
        return await _oauthbearer_probe(host, port, options, security)
    connection = await create_conn(host, port, request_timeout_ms=int(PROBE_TIMEOUT * 1000), **options)
    connection.close()
    return None  # this broker lets us in: whatever failed was not our credentials


async def _oauthbearer_probe(host: str, port: int, options: dict, security: KafkaSecurity) -> str | None:
    """OAUTHBEARER by hand: a broker that refuses a token answers with an error challenge
    (RFC 7628 3.2.2: `{"status":"invalid_token",...}`), which aiokafka takes for success; its
    next request then fails as `No broker metadata` / NodeNotReadyError, naming nothing."""
    plain = {key: value for key, value in options.items() if not key.startswith("sasl_")}
    plain["security_protocol"] = "SSL" if security.uses_ssl else "PLAINTEXT"
    connection: AIOKafkaConnection = await create_conn(
        host, port, request_timeout_ms=int(PROBE_TIMEOUT * 1000), **plain,
    )
    try:
        handshake = await connection.send(SaslHandShakeRequest("OAUTHBEARER"))
        if handshake.error_code:
            raise for_code(handshake.error_code)(f"enabled: {handshake.enabled_mechanisms}")
        token = await options["sasl_oauth_token_provider"].token()
        request = f"n,,\x01auth=Bearer {token}\x01\x01"  # RFC 7628's client first message
        answer = await connection.send(SaslAuthenticateRequest(request.encode()))
        if answer.error_code:
            raise for_code(answer.error_code)(answer.error_message)
        if answer.sasl_auth_bytes:
            detail = answer.sasl_auth_bytes.decode("utf-8", "replace")
            return TOKEN_REFUSED_BY_KAFKA.format(security=security.describe(), detail=detail)
        return None
    finally:
        connection.close()


async def failure_explain(config: KafkaConfig, error: BaseException) -> str | None:
    """Why a client of ours could not reach Kafka, when Kafka (or the token endpoint) refused it;
    None when the failure names no refusal (unreachable, timed out): the caller says that."""
    named = cause_name(error, config.security)
    if named is not None:
        return named
    # The two ways a refusal reaches a client's start: no broker let it in, or one seemed to
    # and then answered nothing (a refused OAUTHBEARER token, see _oauthbearer_probe).
    if not isinstance(error, KafkaConnectionError | NodeNotReadyError):
        return None
    return await connection_probe(config)
