"""What `/readyz` checks: Redis answers, a consumer heartbeat arrived recently, and
(when the canary is on) a canary event made it through the whole path recently."""

from __future__ import annotations

import asyncio

import redis.asyncio as redis_async
from django.conf import settings
from redis.exceptions import RedisError

from crm_events import canary
from crm_events.config import CanaryConfig, ReadinessConfig
from crm_events.fanout import EventHub
from crm_events.hub_observer import HubObserver

REDIS_PING_TIMEOUT = 1.0

CHECK_OK = "ok"


async def redis_check() -> str:
    client = redis_async.from_url(settings.REDIS_URL, socket_connect_timeout=REDIS_PING_TIMEOUT)
    try:
        async with asyncio.timeout(REDIS_PING_TIMEOUT):
            await client.ping()
        return CHECK_OK
    except (RedisError, OSError, TimeoutError) as error:
        return f"redis unreachable: {error or type(error).__name__}"
    finally:
        await client.aclose()


def consumer_check(hub: EventHub, config: ReadinessConfig) -> str:
    age = hub.heartbeat_age()
    if age is None:
        return "no heartbeat from consume_events has reached this process yet"
    if age > config.heartbeat_max_age:
        return f"last heartbeat from consume_events was {age:.1f}s ago"
    return CHECK_OK


async def readiness_checks(hub: EventHub, config: ReadinessConfig) -> dict[str, str]:
    return {"redis": await redis_check(), "consumer": consumer_check(hub, config)}


def canary_check(observer: HubObserver, config: CanaryConfig) -> str:
    age = observer.canary_age()
    if age is None:
        return canary.NO_CANARY_YET
    if age > config.max_age:
        return canary.CANARY_STALE.format(age=age, max_age=config.max_age)
    return CHECK_OK
