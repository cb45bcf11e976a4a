"""How many channel-layer messages wait in Redis for the web process (its intake backlog).

channels-redis keeps one sorted set per process for all of that process's channels, named
`<prefix><kind>.<client id>!`. A backlog that grows while events flow means the web process
takes messages off the layer more slowly than `consume_events` puts them on.
"""

from __future__ import annotations

import asyncio

import redis.asyncio as redis_async

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
