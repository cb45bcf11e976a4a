"""What `/status` checks upstream of this process (never `/readyz`: see process_checks.py):
Redis answers and takes writes, this process receives from the channel layer now, Kafka
answers it, a consumer heartbeat arrived recently and says publishing makes progress, and
(when the canary is on) a canary event made it through the whole path recently.

Publishing can stall while heartbeats still arrive (Redis refusing the records but not
the small heartbeats): the consumer's heartbeat says so (`stalled`, past
CONSUMER_PUBLISH_STALL_SECONDS), and the consumer check names it. When Redis refuses every
write (full under `noeviction`), no heartbeat gets through either: the redis check's
write probe then says why."""

from __future__ import annotations

import asyncio
from typing import Any

from django.conf import settings
from redis.exceptions import RedisError, ResponseError

from crm_events.config import CanaryConfig, ReadinessConfig, redis_config
from crm_events.core import canary
from crm_events.exceptions import KafkaRefused, KafkaUnavailable
from crm_events.fanout.hub import EventHub
from crm_events.fanout.observer import HubObserver
from crm_events.redis_clients import redis_connected
from crm_events.registry import registry_decoder

REDIS_PING_TIMEOUT = 1.0
# The write probe: one small key of this deployment's, kept no longer than a probe period.
REDIS_PROBE_KEY = "{prefix}:readyz"
REDIS_PROBE_TTL = 10

CHECK_OK = "ok"
REDIS_UNREACHABLE = "redis unreachable: {}"
REDIS_REFUSES_WRITES = "redis refuses writes: {}"
PUBLISHING_STALLED = "publishing stalled for {seconds:.0f} s: {reason}"
REGISTRY_UNREACHABLE = "Schema Registry unreachable for {seconds}s: {error}"


async def redis_check() -> str:
    try:
        async with redis_connected(redis_config(), timeout=REDIS_PING_TIMEOUT) as client:
            async with asyncio.timeout(REDIS_PING_TIMEOUT):
                await client.ping()
                probe_key = REDIS_PROBE_KEY.format(prefix=settings.REDIS_PREFIX)
                await client.set(probe_key, b"1", ex=REDIS_PROBE_TTL)
        return CHECK_OK
    except ResponseError as error:  # it answers, and refuses: out of memory, read-only...
        return REDIS_REFUSES_WRITES.format(f"{type(error).__name__}: {error}")
    except (RedisError, OSError, TimeoutError) as error:
        return REDIS_UNREACHABLE.format(str(error) or type(error).__name__)


HUB_JOINING = "joining the channel layer"
HUB_NOT_SUBSCRIBED = "not subscribed to the channel layer: {}"
CONSUMER_UNKNOWN = "unknown: this process is not receiving from the channel layer (see layer)"


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
    stalled = hub.publishing_stalled(config.heartbeat_max_age)
    if stalled is not None:
        return PUBLISHING_STALLED.format(seconds=stalled[0], reason=stalled[1])
    return CHECK_OK


# Short: /status is asked by people and monitors, who should not wait for Kafka's own timeouts.
KAFKA_CHECK_TIMEOUT = 2.0
KAFKA_UNREACHABLE = "kafka unreachable: {}"
KAFKA_REFUSES = "kafka refuses this service: {}"


async def kafka_check(hub: EventHub) -> str:
    """A round trip to Kafka with this process's own clients (the ones catch-up reads with)."""
    try:
        async with asyncio.timeout(KAFKA_CHECK_TIMEOUT):
            await hub.offsets.cluster_id()
        return CHECK_OK
    except KafkaRefused as error:
        return KAFKA_REFUSES.format(error)
    except KafkaUnavailable as error:
        return KAFKA_UNREACHABLE.format(error)
    except TimeoutError:
        return KAFKA_UNREACHABLE.format(f"no answer within {KAFKA_CHECK_TIMEOUT:g} s")


async def upstream_checks(
    hub: EventHub, config: ReadinessConfig, canary_config: CanaryConfig
) -> dict[str, str]:
    """What /status adds to this process's own checks: everything it depends on."""
    checks = {
        "redis": await redis_check(), "layer": hub_check(hub), "kafka": await kafka_check(hub),
        "consumer": consumer_check(hub, config),
    }
    if canary_config.enabled:
        checks["canary"] = canary_check(hub.observer, canary_config)
    registry = registry_decoder().status()
    if registry["configured"]:
        checks["schema_registry"] = registry_check(registry)
    consumer_outage = hub.registry_outage(config.heartbeat_max_age)
    if consumer_outage is not None:
        checks["consumer_schema_registry"] = REGISTRY_UNREACHABLE.format(
            seconds=round(consumer_outage[0], 1), error=consumer_outage[1]
        )
    return checks


def registry_check(status: dict[str, Any]) -> str:
    """This process's Schema Registry (its replays decode with it): ok, or why not."""
    if status["reachable"]:
        return CHECK_OK
    marked = "; delivering records that need it marked" if status["delivering_marked"] else "; retrying"
    return REGISTRY_UNREACHABLE.format(error=status["error"], seconds=status["unreachable_seconds"]) + marked


def canary_check(observer: HubObserver, config: CanaryConfig) -> str:
    age = observer.canary_age()
    if age is None:
        return canary.NO_CANARY_YET
    if age > config.max_age:
        return canary.CANARY_STALE.format(age=age, max_age=config.max_age)
    return CHECK_OK
