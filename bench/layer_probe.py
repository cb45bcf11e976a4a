"""How many channel-layer messages wait in Redis for the web process (its intake backlog).

channels-redis keeps one sorted set per process for all of that process's channels, named
`<prefix><kind>.<client id>!`. A backlog that grows while events flow means the web process
takes messages off the layer more slowly than `consume_events` puts them on.
"""

from __future__ import annotations

import asyncio

import redis.asyncio as redis_async

from bench.waits import NoAnswer, bounded
from crm_events.core import messages as broadcast

SAMPLE_SECONDS = 0.5
SAMPLE_TIMEOUT = 10.0
PURGE_TIMEOUT = 60.0
REDIS_SOCKET_TIMEOUT = 5.0


def redis_client(redis_url: str) -> redis_async.Redis:
    """A client whose every connect and read gives up after a few seconds."""
    return redis_async.from_url(
        redis_url, socket_timeout=REDIS_SOCKET_TIMEOUT, socket_connect_timeout=REDIS_SOCKET_TIMEOUT)


class LayerBacklogProbe:
    """Samples the backlog until `stop()` (see `run`); `peak` and `last` hold the results."""

    def __init__(self, redis_url: str, prefix: str) -> None:
        self.redis_url = redis_url
        self.pattern = f"{prefix}*!"
        self.peak = 0
        self.last = 0
        self.missed = 0  # samples Redis did not answer in time (or failed)
        self.stopping = False

    def stop(self) -> None:
        self.stopping = True

    async def sample(self, client: redis_async.Redis) -> int:
        depth = 0
        async for key in client.scan_iter(match=self.pattern, count=1000):
            depth += await client.zcard(key)
        return depth

    async def run(self) -> None:
        """Sample until `stop()` (then cancel the task: `bench.waits.task_stop`).

        The flag is what ends the loop for sure: a cancellation that lands inside a Redis command
        can be swallowed by redis-py (see bench/waits.py), and the loop would go on sampling.
        """
        client = redis_client(self.redis_url)
        try:
            while not self.stopping:
                try:
                    self.last = await bounded(
                        self.sample(client), SAMPLE_TIMEOUT, f"Redis at {self.redis_url} (backlog sample)")
                except (NoAnswer, redis_async.RedisError, OSError):
                    self.missed += 1  # an observation only: the window still counts
                else:
                    self.peak = max(self.peak, self.last)
                if not self.stopping:
                    await asyncio.sleep(SAMPLE_SECONDS)
        finally:
            await bounded(client.aclose(), SAMPLE_TIMEOUT, f"Redis at {self.redis_url} (closing the probe)")


async def groups_purge(redis_url: str, prefix: str) -> dict[str, int]:
    """Remove what the per-connection-group design leaves behind, before the next mode runs.

    Daphne cancels a consumer that has not finished 10 s after its client left, and one that
    is behind never reaches its `group_discard`: its channel stays in the broadcast group
    (`consume_events` keeps sending to it) and its queued messages stay in Redis.
    """
    return await bounded(_groups_purge(redis_url, prefix), PURGE_TIMEOUT,
                         f"Redis at {redis_url} (removing what the groups design left behind)")


async def _groups_purge(redis_url: str, prefix: str) -> dict[str, int]:
    client = redis_client(redis_url)
    try:
        group = f"{prefix}:group:{broadcast.BROADCAST_GROUP}"
        # Without scores or decoding, ZRANGE gives the members as bytes.
        members = await client.zrange(group, 0, -1)
        stale = [m for m in members if isinstance(m, bytes) and m.startswith(b"specific.")]
        if stale:
            await client.zrem(group, *stale)
        backlog = 0
        async for key in client.scan_iter(match=f"{prefix}specific.*", count=1000):
            backlog += await client.zcard(key) if not key.endswith(b"$inflight") else 0
            await client.delete(key)
        return {"stale_members": len(stale), "queued_messages": backlog}
    finally:
        await client.aclose()
