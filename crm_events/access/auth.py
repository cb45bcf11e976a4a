"""Who may open an SSE stream, and which topics and event types they may read.

`SSE_AUTH_MODE` picks one of three modes:

- `none`: everyone is the anonymous principal and may read everything (development);
- `session`: an authenticated, active Django user (a logged-in session cookie), reading what
  their stream grant allows (`session_grants`: superusers everything, anyone else only under a
  grant, none meaning a 403); the stream ends when the session expires;
- `jwt`: a JWT in `Authorization: Bearer <token>`, or in the cookie named by `SSE_JWT_COOKIE`.
  It is verified with the one configured algorithm and key; `exp` and `sub` are required,
  `aud`/`iss` are checked when configured. `exp`, `nbf` and `iat` are dates in seconds (a JSON
  number within the years 1 to 9999, see `token_dates`), each judged with `SSE_JWT_LEEWAY`:
  a token is accepted until `exp` plus the leeway, and a stream opened with it lives as long.
  The optional topics claim (`SSE_JWT_TOPICS_CLAIM`) lists the readable topics and the optional
  kinds claim (`SSE_JWT_KINDS_CLAIM`) the readable event types, with the meaning of the
  stream's `kind=` parameter (`deal` covers `deal.won`).
  The optional grant claim (`SSE_JWT_GRANT_CLAIM`, or a grant made from other claims by
  `SSE_JWT_GRANT_TEMPLATE`: see `jwt_grants`) adds mandatory filters (`access.grants`).
  A token in the query string is refused: query strings end up in access logs.

Claims fail closed. An absent topics or kinds claim means no restriction; a present one
must be a list of non-empty strings (anything else is a 401), and `[]` grants nothing:
no topic (a 403 before streaming) or no event type. `sub` must be a non-blank string.
A time claim that is no such date is a 401 `claim_malformed` too.

`stream_principal(request)` returns a `Principal` or raises `AuthenticationFailed` (401);
`Principal.topics_check(topics)` and `Principal.topics_readable(served)` raise
`StreamForbidden` (403). Both render with
`crm_events.responses.error_response`.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cache
from typing import Any

import jwt
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from django.contrib.sessions.backends.base import SessionBase
from django.contrib.sessions.models import Session
from django.http import HttpRequest
from jwt.exceptions import InvalidSubjectError

from crm_events import metrics
from crm_events.access.grants import StreamGrant
from crm_events.access.jwt_grants import token_grant
from crm_events.access.revocation import session_tag
from crm_events.access.session_grants import session_grant_find
from crm_events.access.token_dates import Verdict, token_window
from crm_events.config import AuthConfig, auth_config
from crm_events.core.close_reasons import CloseReason
from crm_events.core.filters import kind_matches
from crm_events.exceptions import AuthenticationFailed, StreamForbidden


class AuthMode(StrEnum):
    """`SSE_AUTH_MODE`: who may open a stream (see the module's docstring)."""

    NONE = "none"
    SESSION = "session"
    JWT = "jwt"


ANONYMOUS = "anonymous"
QUERY_TOKEN_NAMES = ("access_token", "token", "jwt", "bearer")

CREDENTIALS_MISSING = "authentication required: send Authorization: Bearer <token>"
AUTHORIZATION_MALFORMED = "the Authorization header must be: Bearer <token>"
TOKEN_IN_QUERY = "tokens in the query string are refused: send them in the Authorization header"
TOKEN_EXPIRED = "the token has expired"
TOKEN_INVALID = "the token is not valid"
TOKEN_CLAIM_MISSING = "the token lacks a required claim (exp, sub, or the configured aud/iss)"
TOKEN_CLAIM_MALFORMED = "the token's topics or kinds claim must be a list of non-empty strings"
TOKEN_DATE_MALFORMED = "the token's exp, nbf and iat claims must be numbers of seconds in the years 1 to 9999"
TOKEN_SUBJECT_INVALID = "the token's sub claim must be a non-empty string"
SESSION_REQUIRED = "log in first: this stream needs an authenticated session"
TOPICS_FORBIDDEN = "these credentials may not read the requested topics"
NO_TOPIC_READABLE = "these credentials may not read any topic this service serves"


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is streaming, and what they may read. `None` means no restriction."""

    subject: str
    allowed_topics: frozenset[str] | None = None
    allowed_kinds: frozenset[str] | None = None
    # Unix time until which the credentials are accepted (a token's exp plus the leeway); None: no end.
    expires_at: float | None = None
    # Why a stream ends when `expires_at` comes, as its `reconnect` frame says (None: `auth_expired`).
    expiry_reason: str | None = None
    # A session user's grant row in force (`user:NAME`, `group:NAME`) or `superuser`; None for tokens.
    grant_owner: str | None = None
    # A session user's session, hashed (`session_tag`): a logout ends the streams it opened.
    session: str | None = None
    # Mandatory filters AND-ed with the client's (see access/grants.py); None: only topics and kinds limit.
    grant: StreamGrant | None = None
    # The topics readable under both the topics claim and the grant (None: every topic), set once.
    topics_limit: frozenset[str] | None = field(init=False, repr=False, compare=False, default=None)

    def __post_init__(self) -> None:
        limit = self.allowed_topics if self.grant is None else self.grant.topics_within(self.allowed_topics)
        object.__setattr__(self, "topics_limit", limit)

    @property
    def is_anonymous(self) -> bool:
        return self.subject == ANONYMOUS

    def topics_check(self, topics: Iterable[str]) -> None:
        """Raise `StreamForbidden` unless every topic is readable.

        Use it for the live topics, for replay, and for the topics decoded from a resume
        token alike, so a token cannot reach a topic by smuggling it into `Last-Event-ID`.
        """
        limit = self.topics_limit
        if limit is None:
            return
        forbidden = sorted(set(topics) - limit)
        if forbidden:
            metrics.auth_failed("topic_forbidden")
            raise StreamForbidden(TOPICS_FORBIDDEN, topics=forbidden)

    def topics_readable(self, served: Iterable[str]) -> tuple[str, ...]:
        """The served topics this principal may read, in order; `StreamForbidden` if none.

        A topics claim of `[]`, or one naming only topics this service does not serve,
        grants nothing: the stream is refused rather than opened onto no topic.
        """
        limit = self.topics_limit
        readable = tuple(t for t in served if limit is None or t in limit)
        if not readable:
            metrics.auth_failed("topic_forbidden")
            raise StreamForbidden(NO_TOPIC_READABLE)
        return readable

    def kind_allowed(self, event_type: str | None) -> bool:
        """Whether an event of this type may be delivered; kinds mean what `kind=` means.

        A listed `deal` allows `deal` and `deal.won`, `deal.won` only itself; an untyped
        event only when the kinds are unrestricted. An empty set allows nothing (unlike
        the `kind=` filter, where no value means no filter).
        """
        if self.allowed_kinds is None:
            return True
        return kind_matches(event_type, self.allowed_kinds)

    @property
    def reads_all(self) -> bool:
        """No topic, kind or grant restriction: every event is allowed."""
        return self.allowed_topics is None and self.allowed_kinds is None and self.grant is None

    def event_allowed(self, payload: dict[str, Any]) -> bool:
        """Per-event check for live and replayed events: topic and type must both be allowed.

        Frames the service makes itself (`connected`, gaps...) are not domain events and pass.
        """
        if payload.get("kind") != "domain_event":
            return True
        limit = self.topics_limit
        topic_ok = limit is None or payload.get("topic") in limit
        return topic_ok and self.kind_allowed(payload.get("type"))

    def expires_in(self, now: float | None = None) -> float | None:
        """Seconds until the credentials expire (<= 0: expired), None if they never do."""
        if self.expires_at is None:
            return None
        return self.expires_at - (time.time() if now is None else now)


async def stream_principal(request: HttpRequest) -> Principal:
    """Authenticate a stream request by `SSE_AUTH_MODE`; raise `AuthenticationFailed` (401)."""
    config = auth_config()
    try:
        if config.mode == AuthMode.SESSION:
            return await _session_principal(request)
        if config.mode == AuthMode.JWT:
            return jwt_principal(_bearer_token(request, config), config)
    except AuthenticationFailed as error:
        metrics.auth_failed(error.details.get("reason", "invalid"))  # type: ignore[arg-type]
        raise
    return Principal(subject=ANONYMOUS)


async def _session_principal(request: HttpRequest) -> Principal:
    user = await request.auser()
    if not user.is_authenticated or not user.is_active:
        raise AuthenticationFailed(SESSION_REQUIRED, reason="session")
    found = await session_grant_find(user)
    if found.refused:
        metrics.auth_failed("no_grant")
        raise StreamForbidden(found.refusal or "", grant_owner=found.owner)
    grant = found.grant
    expires_at = await session_expiry(request.session)
    return Principal(
        subject=f"user:{user.get_username()}",
        # Also stated as topics and kinds: what every path already enforces for a token's claims.
        allowed_topics=(grant.topics or None) if grant else None,
        allowed_kinds=(grant.kinds or None) if grant else None,
        grant=grant, grant_owner=found.owner or found.rule,
        expires_at=expires_at, expiry_reason=CloseReason.SESSION_EXPIRED,
        session=session_tag(request.session.session_key),
    )


async def session_expiry(session: SessionBase) -> float:
    """When the session stops being accepted: its row's `expire_date` (set when it was last
    saved, which is not every request), else what the session itself computes."""
    key = session.session_key
    stored = await Session.objects.filter(session_key=key).values_list("expire_date", flat=True).afirst()
    return (stored or await session.aget_expiry_date()).timestamp()


def _bearer_token(request: HttpRequest, config: AuthConfig) -> str:
    if any(name in request.GET for name in QUERY_TOKEN_NAMES):
        raise AuthenticationFailed(TOKEN_IN_QUERY, reason="query_token")
    header = request.headers.get("Authorization")
    if header is not None:
        scheme, _, token = header.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise AuthenticationFailed(AUTHORIZATION_MALFORMED, reason="malformed")
        return token.strip()
    if config.jwt_cookie and request.COOKIES.get(config.jwt_cookie):
        return request.COOKIES[config.jwt_cookie]
    raise AuthenticationFailed(CREDENTIALS_MISSING, reason="missing")


def jwt_principal(token: str, config: AuthConfig) -> Principal:
    """Verify a JWT and build its principal; raise `AuthenticationFailed` for any flaw."""
    required = ["exp", "sub"] + ["aud"] * bool(config.jwt_audience) + ["iss"] * bool(config.jwt_issuer)
    try:
        claims = jwt.decode(
            token,
            _verification_key(config.jwt_algorithm, config.jwt_key),
            algorithms=[config.jwt_algorithm],
            audience=config.jwt_audience or None,
            issuer=config.jwt_issuer or None,
            # The time claims are judged below: PyJWT's own reading of them lets some through
            # that cannot be held as a date (see token_dates).
            options={"require": required, "verify_exp": False, "verify_nbf": False, "verify_iat": False},
        )
    except jwt.MissingRequiredClaimError:
        raise AuthenticationFailed(TOKEN_CLAIM_MISSING, reason="claim_missing") from None
    except InvalidSubjectError:  # PyJWT's own check: a `sub` that is not a string
        raise AuthenticationFailed(TOKEN_SUBJECT_INVALID, reason="subject_invalid") from None
    except jwt.PyJWTError:
        raise AuthenticationFailed(TOKEN_INVALID, reason="invalid") from None
    expires_at = _accepted_until(claims, config.jwt_leeway)  # an expired token says so first
    return Principal(
        subject=f"jwt:{_subject_claim(claims)}",
        allowed_topics=_string_set_claim(claims, config.topics_claim),
        allowed_kinds=_string_set_claim(claims, config.kinds_claim),
        expires_at=expires_at,
        grant=token_grant(claims, config),
    )


def _accepted_until(claims: dict[str, Any], leeway: float) -> float | None:
    """Until when the token is accepted (exp plus the leeway); raise if it is not now."""
    window = token_window(claims, leeway=leeway, now=time.time())
    if window.verdict is Verdict.MALFORMED:
        raise AuthenticationFailed(TOKEN_DATE_MALFORMED, reason="claim_malformed")
    if window.verdict is Verdict.EXPIRED:
        raise AuthenticationFailed(TOKEN_EXPIRED, reason="expired")
    if window.verdict is Verdict.NOT_YET_VALID:  # as PyJWT's ImmatureSignatureError was
        raise AuthenticationFailed(TOKEN_INVALID, reason="invalid")
    return window.accepted_until


def _subject_claim(claims: dict[str, Any]) -> str:
    """`sub`, a string with something in it: a blank subject would name nobody (and share limits)."""
    subject = claims["sub"]
    if not isinstance(subject, str) or not subject.strip():
        raise AuthenticationFailed(TOKEN_SUBJECT_INVALID, reason="subject_invalid")
    return subject


def _string_set_claim(claims: dict[str, Any], name: str) -> frozenset[str] | None:
    """None when the claim is absent (no restriction); else its set, which may be empty."""
    if not name or name not in claims:
        return None
    value = claims[name]
    if not isinstance(value, list) or not all(isinstance(item, str) and item for item in value):
        raise AuthenticationFailed(TOKEN_CLAIM_MALFORMED, reason="claim_malformed")
    return frozenset(value)


@cache
def _verification_key(algorithm: str, key: str) -> Any:
    """The HS256 secret as bytes, or the RS256/ES256 public key parsed once from its PEM."""
    if algorithm == "HS256":
        return key.encode()
    return load_pem_public_key(key.encode())
