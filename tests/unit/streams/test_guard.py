import asyncio
import json
import time
from dataclasses import replace

import jwt
import pytest
from django.test import AsyncRequestFactory
from hypothesis import HealthCheck, example, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from crm_events.access import auth
from crm_events.access.auth import Principal
from crm_events.config import StreamConfig
from crm_events.core.filters import EventFilter
from crm_events.exceptions import StreamForbidden
from crm_events.ingest import canary
from crm_events.responses import error_response
from crm_events.streams.guard import Admission, GuardedFilter, stream_admit, stream_config_for

DEAL = {"kind": "domain_event", "topic": "t", "partition": 0, "offset": 1, "type": "deal.won", "key": "k"}
TICKET = {**DEAL, "type": "ticket.opened"}
CANARY = {**DEAL, "type": canary.CANARY_TYPE, "headers": {canary.CANARY_HEADER: "1"}}


def test_an_unrestricted_unfiltered_stream_takes_the_short_path_and_still_hides_canaries():
    guarded = GuardedFilter(EventFilter(), Principal("anonymous"))
    assert guarded.unfiltered
    assert guarded.matches(DEAL) and guarded.matches(TICKET)
    assert not guarded.matches(CANARY)
    assert GuardedFilter(EventFilter(), Principal("anonymous"), show_canary=True).matches(CANARY)


def test_a_filter_or_a_restricted_principal_is_checked_per_event():
    by_filter = GuardedFilter(EventFilter(kinds=frozenset({"deal"})), Principal("anonymous"))
    by_principal = GuardedFilter(EventFilter(), Principal("u", allowed_kinds=frozenset({"deal"})))
    for guarded in (by_filter, by_principal):
        assert not guarded.unfiltered
        assert guarded.matches(DEAL) and not guarded.matches(TICKET)


def test_an_empty_kinds_claim_lets_no_event_through():
    guarded = GuardedFilter(EventFilter(), Principal("u", allowed_kinds=frozenset()), show_canary=True)
    assert not guarded.unfiltered
    assert not any(guarded.matches(e) for e in (DEAL, TICKET, CANARY, {**DEAL, "type": None}))
    assert guarded.matches({"kind": "connected"})


# --- stream_admit: credentials that can read no served topic are refused at once ----------------

SECRET = "stream-guard-unit-secret-of-32-bytes-or-more"
factory = AsyncRequestFactory()
NAMES = ("crm.deals", "crm.leads", "crm.audit")


@pytest.fixture
def jwt_settings(settings):
    settings.SSE_AUTH_MODE = "jwt"
    settings.SSE_JWT_ALGORITHM = "HS256"
    settings.SSE_JWT_KEY = SECRET
    settings.SSE_JWT_COOKIE = ""
    settings.SSE_JWT_AUDIENCE = ""
    settings.SSE_JWT_ISSUER = ""
    return settings


def admit(served: tuple[str, ...], topics: list[str] | None) -> Admission:
    claims = {"sub": "ui", "exp": int(time.time()) + 600}
    if topics is not None:
        claims["topics"] = topics
    request = factory.get("/crm-events", headers={
        "Authorization": "Bearer " + jwt.encode(claims, SECRET, algorithm="HS256")})
    return asyncio.run(stream_admit(request, served=served))


@example(served=("crm.deals",), topics=[])  # a 200 stream that never answered (IndexError)
@example(served=("crm.deals",), topics=["crm.payroll"])
@example(served=("crm.deals", "crm.leads"), topics=None)
@hypothesis_settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    served=st.lists(st.sampled_from(NAMES), min_size=1, unique=True).map(tuple),
    topics=st.none() | st.lists(st.sampled_from(NAMES) | st.text(min_size=1, max_size=8), max_size=4),
)
def test_admission_reads_the_served_topics_the_claim_lists_or_is_refused(jwt_settings, served, topics):
    readable = served if topics is None else tuple(t for t in served if t in topics)
    if readable:
        assert admit(served, topics).readable == readable
        return
    with pytest.raises(StreamForbidden) as caught:
        admit(served, topics)
    response = error_response(caught.value)
    assert (response.status_code, json.loads(response.content)) == (
        403, {"ok": False, "error": auth.NO_TOPIC_READABLE, "code": "forbidden"})


def test_a_stream_lives_until_the_credentials_are_refused_or_its_max_lifetime():
    now = time.time()
    config = StreamConfig(heartbeat_interval=15, retry_ms=3000, client_buffer=1000, write_buffer_bytes=1024,
                          socket_send_buffer=1024, stall_timeout=30, max_lifetime=3600.0, shutdown_grace=5)
    # Admitted inside the leeway (exp 5 s ago, leeway 30): it lives until exp + leeway, not 0 s.
    inside = stream_config_for(Principal(subject="jwt:ui", expires_at=now + 25), config)
    assert 24 < inside.max_lifetime <= 25 and inside.credentials_end
    far = stream_config_for(Principal(subject="jwt:ui", expires_at=now + 10**6), config)
    assert far.max_lifetime == 3600.0 and not far.credentials_end
    unlimited = replace(config, max_lifetime=0)
    never = stream_config_for(Principal(subject="jwt:ui", expires_at=now + 10**6), unlimited)
    assert 10**6 - 1 < never.max_lifetime <= 10**6 and never.credentials_end
    assert stream_config_for(Principal(subject="anonymous"), config) is config
