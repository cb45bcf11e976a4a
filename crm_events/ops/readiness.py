"""What `/readyz` checks: Redis answers, a consumer heartbeat arrived recently, and
(when the canary is on) a canary event made it through the whole path recently."""

from __future__ import annotations

import asyncio

import redis.asyncio as redis_async
from django.conf import settings
from redis.exceptions import RedisError

from crm_events.config import CanaryConfig, ReadinessConfig
from crm_events.core import canary
from crm_events.fanout.hub import EventHub
from crm_events.fanout.observer import HubObserver

REDIS_PING_TIMEOUT = 1.0

CHECK_OK = "ok"


async def redis_check() -> str:
    client = redis_async.from_url(settings.REDIS_URL, socket_connect_timeout=REDIS_PING_TIMEOUT)
    try:
        async with asyncio.timeout(REDIS_PING_TIMEOUT):
            await client.ping()
        return CHECK_OK
    except (RedisError, OSError, TimeoutError) as error:
        return f"redis unreachable: {str(error) or type(error).__name__}"
    finally:
        await client.aclose()


HUB_JOINING = "joining the channel layer"
HUB_NOT_SUBSCRIBED = "not subscribed to the channel layer: {}"
CONSUMER_UNKNOWN = "unknown: this process is not receiving from the channel layer (see hub)"


def _hub_failure(hub: EventHub) -> str | None:
    """Why the hub cannot receive now, if something failed (not merely starting)."""
    if hub.receive_failure is not None:
        return f"hub {hub.receive_failure}"
    if not hub.subscription.connected and hub.subscription.last_error:
        return HUB_NOT_SUBSCRIBED.format(hub.subscription.last_error)
    return None


def hub_check(hub: EventHub) -> str:
    """Whether this process's hub is receiving: restarting after an error, cut off from Redis,
    or still joining."""
    failure = _hub_failure(hub)
    if failure is not None:
        return failure
    return CHECK_OK if hub.subscription.connected else HUB_JOINING


def consumer_check(hub: EventHub, config: ReadinessConfig) -> str:
    if _hub_failure(hub) is not None:
        return CONSUMER_UNKNOWN  # heartbeats cannot arrive: say so, not that none was sent
    age = hub.heartbeat_age()
    if age is None:
        return "no heartbeat from consume_events has reached this process yet"
    if age > config.heartbeat_max_age:
        return f"last heartbeat from consume_events was {age:.1f}s ago"
    return CHECK_OK


async def readiness_checks(hub: EventHub, config: ReadinessConfig) -> dict[str, str]:
    return {"redis": await redis_check(), "hub": hub_check(hub), "consumer": consumer_check(hub, config)}


def canary_check(observer: HubObserver, config: CanaryConfig) -> str:
    age = observer.canary_age()
    if age is None:
        return canary.NO_CANARY_YET
    if age > config.max_age:
        return canary.CANARY_STALE.format(age=age, max_age=config.max_age)
    return CHECK_OK
