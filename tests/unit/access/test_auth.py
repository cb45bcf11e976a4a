"""Authentication modes and topic authorization of `crm_events.access.auth`, with real signed JWTs."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from django.contrib.auth.models import AnonymousUser, User
from django.contrib.sessions.backends.db import SessionStore
from django.test import AsyncRequestFactory
from hypothesis import example, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from crm_events.access import auth
from crm_events.config import AuthConfig
from crm_events.exceptions import AuthenticationFailed, StreamForbidden
from crm_events.responses import error_response

SECRET = "an-hs256-shared-secret-of-at-least-32-bytes!"
factory = AsyncRequestFactory()


def token(claims: dict | None = None, *, key=SECRET, algorithm="HS256", **overrides) -> str:
    body = {"sub": "crm-ui", "exp": int(time.time()) + 600, **(claims or {})}
    for name, value in overrides.items():
        if value is None:
            body.pop(name, None)
        else:
            body[name] = value
    return jwt.encode(body, key, algorithm=algorithm)


@pytest.fixture
def jwt_mode(settings):
    settings.SSE_AUTH_MODE = "jwt"
    settings.SSE_JWT_ALGORITHM = "HS256"
    settings.SSE_JWT_KEY = SECRET
    settings.SSE_JWT_COOKIE = "crm_token"
    settings.SSE_JWT_LEEWAY = 0
    settings.SSE_JWT_AUDIENCE = ""
    settings.SSE_JWT_ISSUER = ""
    return settings


def bearer(value: str, path: str = "/crm-events"):
    return factory.get(path, headers={"Authorization": f"Bearer {value}"})


async def refused(request) -> AuthenticationFailed:
    with pytest.raises(AuthenticationFailed) as caught:
        await auth.stream_principal(request)
    return caught.value


async def test_mode_none_lets_everyone_read_everything(settings):
    settings.SSE_AUTH_MODE = "none"
    principal = await auth.stream_principal(factory.get("/crm-events"))
    assert principal == auth.Principal(subject="anonymous")
    assert principal.is_anonymous
    principal.topics_check(["any", "topic"])


async def test_valid_token_gives_its_subject_topics_kinds_and_expiry(jwt_mode):
    exp = int(time.time()) + 300
    value = token({"topics": ["crm.deals"], "kinds": ["deal", "lead.created"]}, exp=exp)
    principal = await auth.stream_principal(bearer(value))
    assert principal == auth.Principal(
        subject="jwt:crm-ui", allowed_topics=frozenset({"crm.deals"}),
        allowed_kinds=frozenset({"deal", "lead.created"}), expires_at=float(exp),
    )
    assert 290 < principal.expires_in() <= 300


async def test_token_without_topics_claim_reads_every_topic(jwt_mode):
    principal = await auth.stream_principal(bearer(token()))
    assert principal.allowed_topics is None and principal.allowed_kinds is None


async def test_token_from_the_configured_cookie(jwt_mode):
    request = factory.get("/crm-events")
    request.COOKIES["crm_token"] = token()
    assert (await auth.stream_principal(request)).subject == "jwt:crm-ui"


@pytest.mark.parametrize(
    ("make_request", "message", "reason"),
    [
        (lambda: factory.get("/crm-events"), auth.CREDENTIALS_MISSING, "missing"),
        (lambda: bearer(token(exp=int(time.time()) - 5)), auth.TOKEN_EXPIRED, "expired"),
        (lambda: bearer(token(key="another-secret-that-is-also-32-bytes-long")), auth.TOKEN_INVALID,
         "invalid"),
        (lambda: bearer("not.a.jwt"), auth.TOKEN_INVALID, "invalid"),
        (lambda: bearer(token(key=SECRET * 2, algorithm="HS512")), auth.TOKEN_INVALID, "invalid"),
        (lambda: bearer(jwt.encode({"sub": "x", "exp": 2**40}, None, algorithm="none")),
         auth.TOKEN_INVALID, "invalid"),
        (lambda: bearer(token(exp=None)), auth.TOKEN_CLAIM_MISSING, "claim_missing"),
        (lambda: bearer(token(sub=None)), auth.TOKEN_CLAIM_MISSING, "claim_missing"),
        (lambda: bearer(token({"topics": "crm.deals"})), auth.TOKEN_CLAIM_MALFORMED, "claim_malformed"),
        (lambda: bearer(token({"kinds": [1, 2]})), auth.TOKEN_CLAIM_MALFORMED, "claim_malformed"),
        (lambda: bearer(token({"topics": None})), auth.TOKEN_CLAIM_MALFORMED, "claim_malformed"),
        (lambda: bearer(token({"kinds": ["deal", ""]})), auth.TOKEN_CLAIM_MALFORMED, "claim_malformed"),
        (lambda: bearer(token({"topics": [["t"]]})), auth.TOKEN_CLAIM_MALFORMED, "claim_malformed"),
        (lambda: bearer(token(sub="")), auth.TOKEN_SUBJECT_INVALID, "subject_invalid"),
        (lambda: bearer(token(sub=" ")), auth.TOKEN_SUBJECT_INVALID, "subject_invalid"),
        (lambda: bearer(token(sub=42)), auth.TOKEN_SUBJECT_INVALID, "subject_invalid"),
        (lambda: factory.get("/crm-events", headers={"Authorization": "Basic dXNlcjpwdw=="}),
         auth.AUTHORIZATION_MALFORMED, "malformed"),
        (lambda: factory.get("/crm-events", headers={"Authorization": "Bearer "}),
         auth.AUTHORIZATION_MALFORMED, "malformed"),
        (lambda: factory.get(f"/crm-events?access_token={token()}"), auth.TOKEN_IN_QUERY, "query_token"),
        (lambda: factory.get(f"/crm-events?token={token()}", headers={"Authorization": f"Bearer {token()}"}),
         auth.TOKEN_IN_QUERY, "query_token"),
    ],
    ids=["missing", "expired", "wrong-key", "garbage", "other-alg", "alg-none", "no-exp", "no-sub",
         "topics-not-list", "kinds-not-strings", "topics-null", "kinds-empty-string", "topics-nested",
         "sub-empty", "sub-blank", "sub-number", "basic-scheme", "empty-bearer", "query", "query+header"],
)
async def test_bad_credentials_are_401_with_an_exact_message(jwt_mode, make_request, message, reason):
    error = await refused(make_request())
    assert (error.status, error.message, error.details) == (401, message, {"reason": reason})


async def test_a_token_inside_the_leeway_is_accepted_until_exp_plus_leeway(jwt_mode):
    jwt_mode.SSE_JWT_LEEWAY = 30
    exp = int(time.time()) - 5
    principal = await auth.stream_principal(bearer(token(exp=exp)))
    assert principal.expires_at == exp + 30  # so its stream is not ended at once
    assert 20 < principal.expires_in() <= 25
    late = await refused(bearer(token(exp=int(time.time()) - 31)))
    assert (late.message, late.details) == (auth.TOKEN_EXPIRED, {"reason": "expired"})


def hs256_raw(payload: str, key: bytes = SECRET.encode()) -> str:
    """A token signed over this exact JSON text (`1e400`, `NaN`: what json.dumps never writes)."""
    def part(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    signing_input = part(b'{"alg":"HS256","typ":"JWT"}') + "." + part(payload.encode())
    signature = hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + part(signature)


FUTURE = "1900000000"
MALFORMED = (auth.TOKEN_DATE_MALFORMED, "claim_malformed")


@pytest.mark.parametrize(
    ("payload", "refusal"),
    [
        ('{"sub":"ui","exp":' + "9" * 400 + "}", MALFORMED),  # was a 500: float() overflowed
        ('{"sub":"ui","exp":1e400}', MALFORMED),  # JSON's infinity
        ('{"sub":"ui","exp":-1e400}', MALFORMED),
        ('{"sub":"ui","exp":NaN}', MALFORMED),
        ('{"sub":"ui","exp":Infinity}', MALFORMED),
        ('{"sub":"ui","exp":253402300800}', MALFORMED),  # the year 10000
        ('{"sub":"ui","exp":true}', MALFORMED),
        ('{"sub":"ui","exp":"' + FUTURE + '"}', MALFORMED),  # PyJWT's int() took a string of digits
        ('{"sub":"ui","exp":[' + FUTURE + "]}", MALFORMED),
        ('{"sub":"ui","exp":{"at":' + FUTURE + "}}", MALFORMED),
        ('{"sub":"ui","exp":' + FUTURE + ',"nbf":' + "9" * 400 + "}", MALFORMED),
        ('{"sub":"ui","exp":' + FUTURE + ',"iat":-' + "9" * 400 + "}", MALFORMED),
        ('{"sub":"ui","exp":' + FUTURE + ',"iat":null}', MALFORMED),
        ('{"sub":"ui","exp":' + FUTURE + ',"nbf":"0"}', MALFORMED),
        ('{"sub":"ui","exp":null}', (auth.TOKEN_CLAIM_MISSING, "claim_missing")),
        ('{"sub":"ui","exp":-1}', (auth.TOKEN_EXPIRED, "expired")),  # 1969: a date, long past
        ('{"sub":"ui","exp":-62135596800}', (auth.TOKEN_EXPIRED, "expired")),  # the year 1
        ('{"sub":"ui","exp":' + FUTURE + ',"nbf":253402300799}', (auth.TOKEN_INVALID, "invalid")),
        ('{"sub":"ui","exp":' + FUTURE + ',"iat":253402300799}', (auth.TOKEN_INVALID, "invalid")),
    ],
    ids=["exp-huge", "exp-1e400", "exp-minus-1e400", "exp-nan", "exp-infinity", "exp-year-10000",
         "exp-true", "exp-string", "exp-list", "exp-object", "nbf-huge", "iat-huge-negative", "iat-null",
         "nbf-string", "exp-null", "exp-negative", "exp-year-1", "nbf-future", "iat-future"],
)
def test_odd_time_claims_are_401_with_their_reason(payload, refusal):
    with pytest.raises(AuthenticationFailed) as caught:
        auth.jwt_principal(hs256_raw(payload), AUTH_CONFIG)
    assert (caught.value.status, caught.value.message, caught.value.details["reason"]) == (
        401, *refusal)


@pytest.mark.parametrize(
    ("payload", "expires_at"),
    [
        ('{"sub":"ui","exp":253402300799}', 253402300799.0),  # the last second of the year 9999
        ('{"sub":"ui","exp":1900000000.75,"nbf":1.5,"iat":-5}', 1900000000.75),
        ('{"sub":"ui","exp":1.9e9,"iat":0}', 1.9e9),
    ],
    ids=["exp-year-9999", "floats-and-negatives", "exponent"],
)
def test_time_claims_that_are_dates_are_admitted(payload, expires_at):
    assert auth.jwt_principal(hs256_raw(payload), AUTH_CONFIG).expires_at == expires_at


async def test_audience_and_issuer_when_configured(jwt_mode):
    jwt_mode.SSE_JWT_AUDIENCE = "crm-events"
    jwt_mode.SSE_JWT_ISSUER = "https://id.example"
    good = token(aud="crm-events", iss="https://id.example")
    assert (await auth.stream_principal(bearer(good))).subject == "jwt:crm-ui"
    assert (await refused(bearer(token(aud="other", iss="https://id.example")))).message == auth.TOKEN_INVALID
    assert (await refused(bearer(token(aud="crm-events", iss="https://evil")))).message == auth.TOKEN_INVALID
    assert (await refused(bearer(token(iss="https://id.example")))).message == auth.TOKEN_CLAIM_MISSING


def hs256_forge(claims: dict, key: bytes) -> str:
    """Sign by hand: PyJWT itself refuses to use a PEM key as an HMAC secret."""
    return hs256_raw(json.dumps(claims), key)


def pem_public(private_key) -> str:
    return private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


@pytest.mark.parametrize(
    ("algorithm", "generate"),
    [
        ("RS256", lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048)),
        ("ES256", lambda: ec.generate_private_key(ec.SECP256R1())),
    ],
)
async def test_public_key_algorithms(jwt_mode, algorithm, generate):
    signer, impostor = generate(), generate()
    jwt_mode.SSE_JWT_ALGORITHM = algorithm
    jwt_mode.SSE_JWT_KEY = pem_public(signer)
    principal = await auth.stream_principal(bearer(token({"topics": ["t"]}, key=signer, algorithm=algorithm)))
    assert principal.allowed_topics == frozenset({"t"})
    wrong_key = token(key=impostor, algorithm=algorithm)
    assert (await refused(bearer(wrong_key))).message == auth.TOKEN_INVALID
    # The classic confusion attack: HS256 signed with the public key's text.
    confused = hs256_forge({"sub": "x", "exp": 2**40}, jwt_mode.SSE_JWT_KEY.encode())
    assert (await refused(bearer(confused))).message == auth.TOKEN_INVALID


@pytest.mark.django_db(transaction=True)  # async: its queries run outside the test's transaction
async def test_session_mode_needs_a_logged_in_active_user(settings):
    settings.SSE_AUTH_MODE = "session"
    user = await User.objects.acreate(username="ana", is_superuser=True)  # grants: test_session_grants.py
    request = factory.get("/crm-events")
    request.session = SessionStore()

    async def logged_in():
        return user

    async def anonymous():
        return AnonymousUser()

    request.auser = logged_in
    principal = await auth.stream_principal(request)
    assert (principal.subject, principal.reads_all, principal.grant_owner) == ("user:ana", True, "superuser")
    request.auser = anonymous
    error = await refused(request)
    assert (error.status, error.message) == (401, auth.SESSION_REQUIRED)


def test_topics_check_covers_live_replay_and_resume_token_topics():
    principal = auth.Principal(subject="jwt:x", allowed_topics=frozenset({"crm.deals"}))
    principal.topics_check(["crm.deals"])
    principal.topics_check([])
    # e.g. the topics decoded from a Last-Event-ID resume token
    with pytest.raises(StreamForbidden) as caught:
        principal.topics_check(["crm.deals", "crm.payroll", "crm.hr"])
    assert (caught.value.status, caught.value.message) == (403, auth.TOPICS_FORBIDDEN)
    assert caught.value.details == {"topics": ["crm.hr", "crm.payroll"]}


def test_event_allowed_filters_topic_and_type_but_never_service_frames():
    principal = auth.Principal(
        subject="jwt:x", allowed_topics=frozenset({"a"}), allowed_kinds=frozenset({"deal", "lead.created"})
    )

    def event(topic, event_type):
        return {"kind": "domain_event", "topic": topic, "type": event_type}

    assert principal.event_allowed(event("a", "deal.won"))
    assert principal.event_allowed(event("a", "lead.created"))
    assert not principal.event_allowed(event("a", "lead.converted"))
    assert not principal.event_allowed(event("a", None))
    assert not principal.event_allowed(event("b", "deal.won"))
    assert not principal.event_allowed(event("a", "dealer.x"))
    assert principal.event_allowed(event("a", "deal"))
    assert principal.event_allowed({"kind": "connected"})


def test_error_bodies_are_json_with_the_right_headers():
    response = error_response(AuthenticationFailed(auth.TOKEN_EXPIRED, reason="expired"))
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer realm="crm-events"'
    assert response["Content-Type"] == "application/json"
    assert json.loads(response.content) == {
        "ok": False, "error": auth.TOKEN_EXPIRED, "code": "unauthorized", "reason": "expired",
    }
    response = error_response(StreamForbidden(auth.TOPICS_FORBIDDEN, topics=["x"]))
    assert response.status_code == 403
    assert json.loads(response.content) == {
        "ok": False, "error": auth.TOPICS_FORBIDDEN, "code": "forbidden", "topics": ["x"],
    }


def test_auth_config_record_hides_the_key():
    assert SECRET not in repr(AuthConfig(mode="jwt", jwt_key=SECRET))


async def test_empty_claims_grant_nothing(jwt_mode):
    principal = await auth.stream_principal(bearer(token({"topics": [], "kinds": []})))
    assert (principal.allowed_topics, principal.allowed_kinds) == (frozenset(), frozenset())
    assert not principal.reads_all
    for event_type in ("deal.won", "deal", None):
        assert not principal.kind_allowed(event_type)
    with pytest.raises(StreamForbidden) as caught:
        principal.topics_readable(["crm.deals"])
    assert (caught.value.status, caught.value.message, caught.value.details) == (
        403, auth.NO_TOPIC_READABLE, {})


# --- The claims as a class of input: any JSON value, absent, null, [] or odd lists ----------------

class _Absent:
    """A claim left out of the token (as opposed to null or [])."""

    def __repr__(self) -> str:
        return "ABSENT"


ABSENT = _Absent()
TOPICS = ("crm.deals", "crm.leads", "crm.audit")
KINDS = ("deal", "deal.won", "lead", "lead.created", "deal.")
AUTH_CONFIG = AuthConfig(mode="jwt", jwt_key=SECRET, jwt_leeway=0)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=6,
)


def claim_values(names: tuple[str, ...]) -> st.SearchStrategy:
    name = st.sampled_from(names) | st.text(max_size=10)
    return st.one_of(
        st.just(ABSENT), st.none(), st.just([]), st.lists(name, max_size=4),
        st.lists(name | json_values, max_size=4), json_values,
    )


def claimed(value) -> bool:
    """The claim as docs/security.md states it: absent, or a list of non-empty strings."""
    if value is ABSENT:
        return True
    return isinstance(value, list) and all(isinstance(item, str) and item != "" for item in value)


def covers(kinds, event_type) -> bool:
    """`kind=` by dotted segments: `deal` covers `deal` and `deal.won`, not `dealer`."""
    if kinds is ABSENT:
        return True
    if event_type is None:
        return False
    return any(event_type.split(".")[: len(k.split("."))] == k.split(".") for k in kinds)


def signed(sub, topics, kinds) -> str:
    claims = {"exp": int(time.time()) + 600}
    for name, value in (("sub", sub), ("topics", topics), ("kinds", kinds)):
        if value is not ABSENT:
            claims[name] = value
    return jwt.encode(claims, SECRET, algorithm="HS256")


@example(sub="ui", topics=ABSENT, kinds=[], data=None)  # [] read every event type
@example(sub="", topics=ABSENT, kinds=ABSENT, data=None)  # an empty subject was accepted
@example(sub="ui", topics=[""], kinds=["deal", ""], data=None)  # empty entries were accepted
@example(sub="ui", topics=None, kinds=ABSENT, data=None)
@hypothesis_settings(max_examples=300)
@given(
    sub=st.one_of(st.just(ABSENT), st.sampled_from(["ui", "", " "]), st.text(max_size=8), json_values),
    topics=claim_values(TOPICS), kinds=claim_values(KINDS), data=st.data(),
)
def test_any_claims_are_refused_or_grant_exactly_what_they_list(sub, topics, kinds, data):
    well_formed = isinstance(sub, str) and sub.strip() != "" and claimed(topics) and claimed(kinds)
    try:
        principal = auth.jwt_principal(signed(sub, topics, kinds), AUTH_CONFIG)
    except AuthenticationFailed as error:
        assert error.status == 401
        assert not well_formed, (sub, topics, kinds, error.message)
        return
    assert well_formed, (sub, topics, kinds)
    if data is None:  # an @example: draw a few fixed payloads
        payloads = [{"kind": "domain_event", "topic": t, "type": k}
                    for t in TOPICS for k in (None, "deal", "deal.won", "dealer", "lead.x")]
    else:
        known_kinds = list(KINDS) + (list(kinds) if kinds is not ABSENT else [])
        event_type = st.none() | st.text(max_size=10) | st.sampled_from(known_kinds).flatmap(
            lambda k: st.sampled_from([k, k + ".x", k + "x", k[:-1], "." + k]))
        payloads = data.draw(st.lists(st.fixed_dictionaries({
            "kind": st.just("domain_event"), "topic": st.sampled_from(TOPICS) | st.text(max_size=8),
            "type": event_type,
        }), min_size=1, max_size=8))
    for payload in payloads:
        topic_ok = topics is ABSENT or payload["topic"] in topics
        assert principal.event_allowed(payload) is (topic_ok and covers(kinds, payload["type"])), payload
    # Frames the service makes itself are never domain events, whatever the claims.
    assert principal.event_allowed({"kind": "connected"})


# --- The time claims as a class of input: any JSON number or other value, or absent --------------

class Raw(str):
    """JSON text written as it is: numbers json.dumps never writes (`1e400`, `1E+999`)."""


def time_values(now: float) -> st.SearchStrategy:
    return st.one_of(
        st.just(ABSENT), st.none(), st.booleans(), st.integers(),
        st.integers(min_value=-(10**500), max_value=10**500), st.floats(),
        st.floats(min_value=now - 100, max_value=now + 100), st.integers(min_value=-(2**40), max_value=2**40),
        st.sampled_from([Raw("1e400"), Raw("-1e400"), Raw("1E+999"), Raw("NaN"), Raw("-Infinity"), Raw("-0"),
                         253402300799, 253402300800, -62135596800, -62135596801]),
        st.text(max_size=6), st.from_regex(r"\A[0-9]{1,12}\Z"), json_values,
    )


def time_claims_text(claims: dict) -> str:
    parts = ['"sub":"ui"'] + [f'"{name}":{value if isinstance(value, Raw) else json.dumps(value)}'
                              for name, value in claims.items() if value is not ABSENT]
    return "{" + ",".join(parts) + "}"


def is_date(value) -> bool:
    """RFC 7519's NumericDate, as docs/security.md states it: a JSON number of seconds in the years 1-9999."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return -62135596800 <= value <= 253402300799  # false for NaN; exact for any int


def time_outcome(parsed: dict, leeway: float, now: float) -> str | float:
    """The reason of the 401, or (admitted) until when the token is accepted."""
    if parsed.get("exp") is None:
        return "claim_missing"
    if not all(is_date(value) for value in parsed.values()):
        return "claim_malformed"
    if parsed["exp"] + leeway <= now:
        return "expired"
    if any(parsed.get(name, -math.inf) > now + leeway for name in ("nbf", "iat")):
        return "invalid"
    return float(parsed["exp"]) + leeway


@example(exp=10**400, nbf=ABSENT, iat=ABSENT, leeway=30.0)  # was a 500
@example(exp=Raw("1e400"), nbf=ABSENT, iat=ABSENT, leeway=30.0)
@example(exp=True, nbf=ABSENT, iat=ABSENT, leeway=0.0)
@example(exp="1900000000", nbf=ABSENT, iat=ABSENT, leeway=0.0)
@hypothesis_settings(max_examples=400)
@given(exp=time_values(time.time()), nbf=time_values(time.time()), iat=time_values(time.time()),
       leeway=st.sampled_from([0.0, 30.0, 300.0]))
def test_any_time_claims_are_admitted_or_refused_with_their_401_reason(exp, nbf, iat, leeway):
    text = time_claims_text({"exp": exp, "nbf": nbf, "iat": iat})
    parsed = {name: value for name, value in json.loads(text).items() if name != "sub"}
    config = AuthConfig(mode="jwt", jwt_key=SECRET, jwt_leeway=leeway)
    before = time_outcome(parsed, leeway, time.time())
    try:
        outcome: str | float | None = auth.jwt_principal(hs256_raw(text), config).expires_at
    except AuthenticationFailed as error:
        assert error.status == 401
        outcome = error.details["reason"]
    after = time_outcome(parsed, leeway, time.time())
    assert outcome in (before, after), (text, outcome, before)  # either side of a moment passing
