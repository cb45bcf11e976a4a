"""The one place the service's Redis clients are made, Sentinel or not.

The channel layer builds its own, from `CHANNEL_LAYERS` (settings: `RedisConfig.connection_options`);
every other client (the readiness probe) is built here by channels_redis' own pool factory from
the same options, so it reaches the Redis the layer uses, and follows a failover the same way:
under Sentinel each new connection asks the sentinels for the master's address, and a
connection to a master that became a replica is dropped on its first refused write.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from channels_redis.utils import create_pool
from redis.asyncio import Redis
from redis.asyncio.sentinel import SentinelConnectionPool

from crm_events.config import RedisConfig


@asynccontextmanager
async def redis_connected(config: RedisConfig, *, timeout: float) -> AsyncIterator[Redis]:
    """A client of the layer's Redis (its master, under Sentinel), closed on the way out with
    the connections to the sentinels it asked."""
    pool = create_pool(config.connection_options(socket_timeout=timeout, socket_connect_timeout=timeout))
    client = Redis.from_pool(pool)
    try:
        yield client
    finally:
        await client.aclose()
        if isinstance(pool, SentinelConnectionPool):
            await pool.sentinel_manager.aclose()
