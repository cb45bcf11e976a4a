"""What `/readyz` checks: Redis answers, and a consumer heartbeat arrived recently."""

from __future__ import annotations

import asyncio

import redis.asyncio as redis_async
from django.conf import settings
from redis.exceptions import RedisError

from crm_events.config import ReadinessConfig
from crm_events.fanout import EventHub

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
