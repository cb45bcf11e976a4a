"""Tokens for SASL OAUTHBEARER: the OIDC client-credentials flow, and AWS MSK IAM.

aiokafka asks its `sasl_oauth_token_provider` for a token on every new connection (it
does not re-authenticate a connection: a broker with `connections.max.reauth.ms` closes
it when the token's session ends, and the reconnect asks again). A provider therefore
keeps one token and fetches the next once most of its life is gone, as Kafka's own Java
client does (`sasl.login.refresh.window.factor` 0.8), so a connection never starts with
a token about to expire and many connections share one fetch.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass

from aiokafka.abc import AbstractTokenProvider
from aiokafka.errors import KafkaError

from crm_events.config import OAuthClient

# A token is replaced once this share of its lifetime has passed (Kafka's default window factor).
REFRESH_FACTOR = 0.8
# Lifetime assumed when the endpoint omits `expires_in` (RFC 6749 makes it optional).
DEFAULT_LIFETIME = 300.0
TOKEN_REQUEST_TIMEOUT = 10.0

TOKEN_REFUSED = "the OAuth token endpoint {url} refused the client {client_id}: HTTP {status} {detail}"
TOKEN_UNREACHABLE = "the OAuth token endpoint {url} is unreachable: {reason}"
TOKEN_MALFORMED = "the OAuth token endpoint {url} answered without an access_token: {detail}"
MSK_SIGNING_FAILED = "AWS MSK IAM could not sign a token for region {region}: {reason}"


class TokenError(KafkaError):
    """No token for OAUTHBEARER: the message names the cause (refused, unreachable...).

    A KafkaError, so aiokafka treats it as the failed connection it is (tries the next broker,
    retries later) instead of letting it escape a client's start."""


@dataclass(slots=True)
class _Token:
    value: str
    refresh_at: float


class _CachingTokenProvider(AbstractTokenProvider):
    """One token shared by every connection, fetched again once REFRESH_FACTOR of its life is over."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._token: _Token | None = None
        self._locks: dict[asyncio.AbstractEventLoop, asyncio.Lock] = {}
        self.fetches = 0

    def _lock(self) -> asyncio.Lock:
        """One lock per event loop: a provider is shared by the clients of a process, and a lock
        belongs to the loop it first waited on (management commands run more than one loop)."""
        return self._locks.setdefault(asyncio.get_running_loop(), asyncio.Lock())

    async def token(self) -> str:
        async with self._lock():
            if self._token is None or self._clock() >= self._token.refresh_at:
                started = self._clock()
                value, lifetime = await asyncio.to_thread(self._fetch)
                self.fetches += 1
                self._token = _Token(value, started + lifetime * REFRESH_FACTOR)
            return self._token.value

    def _fetch(self) -> tuple[str, float]:
        """A new token and its lifetime in seconds (blocking: runs in a thread)."""
        raise NotImplementedError


class ClientCredentialsTokenProvider(_CachingTokenProvider):
    """RFC 6749 client credentials: the client authenticates with HTTP Basic (client_secret_basic,
    which every OIDC provider accepts) and gets an access token that Kafka validates."""

    def __init__(self, client: OAuthClient, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(clock)
        self.client = client

    def _fetch(self) -> tuple[str, float]:
        client = self.client
        form = {"grant_type": "client_credentials", **({"scope": client.scope} if client.scope else {})}
        basic = base64.b64encode(
            f"{urllib.parse.quote(client.client_id, safe='')}:"
            f"{urllib.parse.quote(client.client_secret, safe='')}".encode()
        ).decode()
        request = urllib.request.Request(
            client.token_endpoint,
            data=urllib.parse.urlencode(form).encode(),
            headers={
                "Authorization": f"Basic {basic}", "Accept": "application/json",
                "Content-Type": "application/x-www-form-urlencoded",
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=TOKEN_REQUEST_TIMEOUT) as response:
                body = response.read()
        except urllib.error.HTTPError as error:
            detail = _error_detail(error.read())
            raise TokenError(TOKEN_REFUSED.format(
                url=client.token_endpoint, client_id=client.client_id, status=error.code, detail=detail,
            )) from None
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            raise TokenError(TOKEN_UNREACHABLE.format(url=client.token_endpoint, reason=reason)) from None
        return token_answer_parse(client.token_endpoint, body)


def _error_detail(body: bytes) -> str:
    """`error` and `error_description` of an RFC 6749 error answer, else its start."""
    try:
        answer = json.loads(body)
        if isinstance(answer, dict) and "error" in answer:
            return " ".join(str(answer[key]) for key in ("error", "error_description") if answer.get(key))
    except ValueError:
        pass
    return body[:200].decode("utf-8", "replace")


def token_answer_parse(url: str, body: bytes) -> tuple[str, float]:
    try:
        answer = json.loads(body)
    except ValueError:
        answer = None
    if not isinstance(answer, dict) or not isinstance(answer.get("access_token"), str):
        raise TokenError(TOKEN_MALFORMED.format(url=url, detail=body[:200].decode("utf-8", "replace")))
    lifetime = answer.get("expires_in", DEFAULT_LIFETIME)
    if not isinstance(lifetime, int | float) or isinstance(lifetime, bool) or lifetime <= 0:
        lifetime = DEFAULT_LIFETIME
    return answer["access_token"], float(lifetime)


class MskIamTokenProvider(_CachingTokenProvider):
    """AWS MSK IAM: a SigV4-presigned `kafka-cluster:Connect` URL as the OAUTHBEARER token, made by
    AWS's own signer (`aws-msk-iam-sasl-signer-python`) from the process's AWS credentials."""

    def __init__(self, region: str, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(clock)
        self.region = region

    def _fetch(self) -> tuple[str, float]:
        from aws_msk_iam_sasl_signer import MSKAuthTokenProvider  # the optional `msk` extra

        try:
            token, expiry_ms = MSKAuthTokenProvider.generate_auth_token(self.region)
        except Exception as error:  # noqa: BLE001 - botocore's credential errors have no common base
            raise TokenError(MSK_SIGNING_FAILED.format(region=self.region, reason=error)) from None
        return token, max(1.0, expiry_ms / 1000 - time.time())
