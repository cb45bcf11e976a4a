"""Redis Sentinel: the master is killed while events flow and browsers read; the sentinels
promote its replica, and the service follows with nothing lost or duplicated.

The consumer publishes through the channel layer, which asks the sentinels for the master on
every new connection; each web process's hub resubscribes the same way and repairs from Kafka
what was on its way through the dead master. Figures go to `artifacts/faults/`.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from tests.integration.conftest import Stack
from tests.integration.test_faults_delivery import FAULT_AT, all_running, fault_env, wait_status, web
from tests.support.eventsource import BrowserClient
from tests.support.faults import Production, scenario_run
from tests.support.redis_sentinels import SENTINEL_PASSWORD, RedisSentinels

pytestmark = pytest.mark.faults

BROADCAST_GROUP_KEY = "{prefix}:group:crm-events.broadcast"  # channels_redis' key for the group
READINESS_KEY = "{prefix}:readyz"


@pytest.fixture
def sentinels(tmp_path: Path):
    group = RedisSentinels.start(tmp_path / "redis")
    yield group
    group.stop()


async def test_redis_master_killed_the_replica_promoted_and_the_service_follows(
    env, sentinels, tmp_path, capsys
):
    await sentinels.wait_watching()
    stack = Stack(
        {**env, **fault_env(REDIS_URL=sentinels.url, REDIS_SENTINEL_PASSWORD=SENTINEL_PASSWORD)}, tmp_path
    )
    try:
        consumer = stack.consumer()
        ports = web(stack, 2)
        first_pids = [process.process.pid for process in stack.processes]

        async def fault(production: Production, clients: list[BrowserClient]):
            await production.wait_sent(FAULT_AT)
            await asyncio.to_thread(sentinels.master.kill)
            killed_at = time.monotonic()
            promoted_at = await sentinels.wait_master(sentinels.replica.port)
            return killed_at, {"promoted_after_s": round(promoted_at - killed_at, 2)}

        figures = await scenario_run(
            "redis-sentinel-failover", bootstrap=env["KAFKA_BROKERS"], topic=env["KAFKA_TOPIC"], ports=ports,
            fault=fault, capsys=capsys,
        )
        all_running(stack.processes)
        assert [process.process.pid for process in stack.processes] == first_pids  # followed, not restarted
        figures.assert_exact()
        await wait_status(ports, 200, timeout=30)
        await new_master_carries_the_layer(sentinels, env["REDIS_PREFIX"], hubs=len(ports))
        assert not sentinels.master.is_running()
        assert consumer.is_running()
    finally:
        stack.stop_all()


async def new_master_carries_the_layer(sentinels: RedisSentinels, prefix: str, *, hubs: int) -> None:
    """Both hubs are members of the broadcast group on the promoted replica, and the readiness
    probe wrote there: every client found the new master."""
    client = sentinels.client(sentinels.replica)
    try:
        role = await client.execute_command("ROLE")
        assert role[0] == b"master"
        assert await client.zcard(BROADCAST_GROUP_KEY.format(prefix=prefix)) == hubs
        assert await client.exists(READINESS_KEY.format(prefix=prefix)) == 1
    finally:
        await client.aclose()
