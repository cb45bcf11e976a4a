"""Concurrent stream limits and the client address they count by."""

from __future__ import annotations

import gc
import json
from ipaddress import ip_network

import pytest
from django.test import RequestFactory

from crm_events.access import limits
from crm_events.access.auth import Principal
from crm_events.access.client_address import client_address
from crm_events.config import LimitsConfig
from crm_events.exceptions import StreamLimitReached
from crm_events.responses import error_response

CONFIG = LimitsConfig(max_streams=4, max_per_client=2, max_per_subject=3, retry_after=7)
factory = RequestFactory()


def refusal(limiter, **kwargs) -> StreamLimitReached:
    with pytest.raises(StreamLimitReached) as caught:
        limiter.acquire(config=CONFIG, **kwargs)
    return caught.value


def test_per_client_limit_is_429_with_retry_after():
    limiter = limits.StreamLimiter()
    slots = [limiter.acquire(client="10.0.0.1", subject=None, config=CONFIG) for _ in range(2)]
    error = refusal(limiter, client="10.0.0.1", subject=None)
    assert (error.status, error.message, error.retry_after) == (429, limits.CLIENT_FULL, 7)
    response = error_response(error)
    assert response.status_code == 429
    assert response["Retry-After"] == "7"
    assert json.loads(response.content) == {
        "ok": False, "error": limits.CLIENT_FULL, "code": "too_many_streams", "limit": "client",
    }
    limiter.acquire(client="10.0.0.2", subject=None, config=CONFIG)  # another client is fine
    slots[0].release()
    limiter.acquire(client="10.0.0.1", subject=None, config=CONFIG)


def test_per_subject_limit_is_429_across_addresses():
    limiter = limits.StreamLimiter()
    _slots = [limiter.acquire(client=f"10.0.0.{i}", subject="jwt:a", config=CONFIG) for i in range(3)]
    error = refusal(limiter, client="10.0.0.9", subject="jwt:a")
    assert (error.status, error.message) == (429, limits.SUBJECT_FULL)
    assert limiter.acquire(client="10.0.0.9", subject="jwt:b", config=CONFIG)


def test_global_limit_is_503_and_counts_nothing():
    limiter = limits.StreamLimiter()
    _slots = [limiter.acquire(client=f"10.0.0.{i}", subject=None, config=CONFIG) for i in range(4)]
    error = refusal(limiter, client="10.0.0.99", subject=None)
    assert (error.status, error.message, error.retry_after) == (503, limits.SERVER_FULL, 7)
    assert error_response(error)["Retry-After"] == "7"
    assert limiter.total == 4 and "10.0.0.99" not in limiter.by_client


async def test_slot_release_is_idempotent_and_async_with_releases():
    limiter = limits.StreamLimiter()
    async with limiter.acquire(client="c", subject="s", config=CONFIG) as slot:
        assert (limiter.total, limiter.by_client["c"], limiter.by_subject["s"]) == (1, 1, 1)
    assert slot.released
    slot.release()
    assert (limiter.total, dict(limiter.by_client), dict(limiter.by_subject)) == (0, {}, {})


def test_a_forgotten_slot_is_released_when_collected():
    limiter = limits.StreamLimiter()
    slot = limiter.acquire(client="c", subject=None, config=CONFIG)
    assert limiter.total == 1
    del slot
    gc.collect()
    assert limiter.total == 0


def test_anonymous_streams_have_no_subject_limit(settings):
    settings.SSE_MAX_STREAMS_PER_SUBJECT = 1
    settings.SSE_MAX_STREAMS_PER_CLIENT = 5
    request = factory.get("/crm-events", REMOTE_ADDR="192.0.2.10")
    slots = [limits.stream_slot_acquire(request, Principal(subject="anonymous")) for _ in range(3)]
    slots.append(limits.stream_slot_acquire(request, Principal(subject="jwt:one")))
    with pytest.raises(StreamLimitReached) as caught:
        limits.stream_slot_acquire(request, Principal(subject="jwt:one"))
    assert caught.value.message == limits.SUBJECT_FULL
    for slot in slots:
        slot.release()


PROXIES = (ip_network("10.0.0.0/8"), ip_network("::1/128"))


@pytest.mark.parametrize(
    ("peer", "forwarded", "proxies", "client"),
    [
        ("203.0.113.5", None, (), "203.0.113.5"),
        ("203.0.113.5", "198.51.100.1", (), "203.0.113.5"),  # no trusted proxy: header ignored
        ("203.0.113.5", "198.51.100.1", PROXIES, "203.0.113.5"),  # peer is not our proxy
        ("10.1.1.1", "198.51.100.1", PROXIES, "198.51.100.1"),
        ("10.1.1.1", "6.6.6.6, 198.51.100.1, 10.2.2.2", PROXIES, "198.51.100.1"),  # spoofed left part
        ("10.1.1.1", "garbage, 198.51.100.1", PROXIES, "198.51.100.1"),
        ("10.1.1.1", "198.51.100.1, garbage", PROXIES, "unknown"),
        ("10.1.1.1", "10.3.3.3", PROXIES, "10.3.3.3"),
        ("10.1.1.1", None, PROXIES, "10.1.1.1"),
        ("::1", "2001:db8::7", PROXIES, "2001:db8::7"),
        ("", None, PROXIES, "unknown"),
    ],
)
def test_client_address(peer, forwarded, proxies, client):
    headers = {"X-Forwarded-For": forwarded} if forwarded else {}
    request = factory.get("/crm-events", REMOTE_ADDR=peer, headers=headers)
    assert client_address(request, proxies) == client
