"""A Redis master, its replica and three sentinels on free loopback ports, with passwords, as a
production Sentinel deployment has them; and what a failover test asks of them."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from redis.asyncio import Redis
from redis.asyncio.sentinel import MasterNotFoundError, Sentinel

from scripts.servers import LOOPBACK, RedisServer, SentinelServer, free_port

MASTER_NAME = "crm-events"
# A `@` and a `/`: the URL must carry them percent-encoded, and the service must decode them.
PASSWORD = "p@ss/w0rd"
SENTINEL_PASSWORD = "sentinel-s3cret"
SENTINELS = 3


@dataclass
class RedisSentinels:
    master: RedisServer
    replica: RedisServer
    sentinels: list[SentinelServer]

    @classmethod
    def start(
        cls, data_dir: Path, *, down_after_ms: int = 1000, failover_timeout_ms: int = 5000
    ) -> RedisSentinels:
        master = RedisServer(port=free_port(), data_dir=data_dir / "master", password=PASSWORD)
        replica = RedisServer(
            port=free_port(), data_dir=data_dir / "replica", password=PASSWORD, replica_of=master.port
        )
        sentinels = [
            SentinelServer(
                port=free_port(), data_dir=data_dir / f"sentinel{i}", master_name=MASTER_NAME,
                master_port=master.port, down_after_ms=down_after_ms, failover_timeout_ms=failover_timeout_ms,
                master_password=PASSWORD, password=SENTINEL_PASSWORD,
            )
            for i in range(SENTINELS)
        ]
        group = cls(master, replica, sentinels)
        try:
            for server in (master, replica, *sentinels):
                server.start()
        except BaseException:
            group.stop()
            raise
        return group

    def stop(self) -> None:
        for server in (*self.sentinels, self.replica, self.master):
            server.stop()

    @property
    def url(self) -> str:
        """The service's REDIS_URL (with REDIS_SENTINEL_PASSWORD=SENTINEL_PASSWORD)."""
        hosts = ",".join(f"{LOOPBACK}:{sentinel.port}" for sentinel in self.sentinels)
        return f"redis+sentinel://:{quote(PASSWORD, safe='')}@{hosts}/{MASTER_NAME}/0"

    def sentinel_client(self) -> Sentinel:
        return Sentinel(
            [(LOOPBACK, sentinel.port) for sentinel in self.sentinels],
            sentinel_kwargs={"password": SENTINEL_PASSWORD, "socket_timeout": 1.0},
        )

    async def wait_watching(self, timeout: float = 30) -> None:
        """Until every sentinel knows the other two and a replica in sync: before that, a dead
        master would not be failed over."""
        sentinel = self.sentinel_client()
        deadline = time.monotonic() + timeout
        try:
            while not await self._watching(sentinel):
                assert time.monotonic() < deadline, "the sentinels never all watched the master and a replica"
                await asyncio.sleep(0.1)
        finally:
            await sentinel.aclose()

    @staticmethod
    async def _watching(sentinel: Sentinel) -> bool:
        for node in sentinel.sentinels:
            master = await node.sentinel_master(MASTER_NAME)
            replicas = await node.sentinel_slaves(MASTER_NAME)
            in_sync = [r for r in replicas if r.get("master-link-status") == "ok" and not r["is_sdown"]]
            if master["num-other-sentinels"] != SENTINELS - 1 or not in_sync:
                return False
        return True

    async def wait_master(self, port: int, timeout: float = 30) -> float:
        """When (time.monotonic) the sentinels first named 127.0.0.1:`port` as the master."""
        sentinel = self.sentinel_client()
        deadline = time.monotonic() + timeout
        try:
            while True:
                try:
                    if await sentinel.discover_master(MASTER_NAME) == (LOOPBACK, port):
                        return time.monotonic()
                except MasterNotFoundError:  # down, and not yet replaced
                    pass
                assert time.monotonic() < deadline, f"the sentinels never promoted 127.0.0.1:{port}"
                await asyncio.sleep(0.05)
        finally:
            await sentinel.aclose()

    def client(self, server: RedisServer) -> Redis:
        return Redis(host=LOOPBACK, port=server.port, password=PASSWORD)
