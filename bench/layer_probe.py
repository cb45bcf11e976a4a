"""How many channel-layer messages wait in Redis for the web process (its intake backlog).

channels-redis keeps one sorted set per process for all of that process's channels, named
`<prefix><kind>.<client id>!`. A backlog that grows while events flow means the web process
takes messages off the layer more slowly than `consume_events` puts them on.
"""

from __future__ import annotations

import asyncio

import redis.asyncio as redis_async

from crm_events import broadcast

SAMPLE_SECONDS = 0.5


class LayerBacklogProbe:
    def __init__(self, redis_url: str, prefix: str) -> None:
        self.redis_url = redis_url
        self.pattern = f"{prefix}*!"
        self.peak = 0
        self.last = 0

    async def sample(self, client: redis_async.Redis) -> int:
        depth = 0
        async for key in client.scan_iter(match=self.pattern, count=1000):
            depth += await client.zcard(key)
        return depth

    async def run(self) -> None:
        """Sample until cancelled; `peak` and `last` hold the results."""
        client = redis_async.from_url(self.redis_url)
        try:
            while True:
                self.last = await self.sample(client)
                self.peak = max(self.peak, self.last)
                await asyncio.sleep(SAMPLE_SECONDS)
        finally:
            await client.aclose()


async def groups_purge(redis_url: str, prefix: str) -> dict[str, int]:
    """Remove what the per-connection-group design leaves behind, before the next mode runs.

    Daphne cancels a consumer that has not finished 10 s after its client left, and one that
    is behind never reaches its `group_discard`: its channel stays in the broadcast group
    (`consume_events` keeps sending to it) and its queued messages stay in Redis.
    """
    client = redis_async.from_url(redis_url)
    try:
        group = f"{prefix}:group:{broadcast.BROADCAST_GROUP}"
        stale = [m for m in await client.zrange(group, 0, -1) if m.startswith(b"specific.")]
        if stale:
            await client.zrem(group, *stale)
        backlog = 0
        async for key in client.scan_iter(match=f"{prefix}specific.*", count=1000):
            backlog += await client.zcard(key) if not key.endswith(b"$inflight") else 0
            await client.delete(key)
        return {"stale_members": len(stale), "queued_messages": backlog}
    finally:
        await client.aclose()
