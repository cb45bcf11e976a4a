"""Fault tolerance: while events flow and browsers read, break one part of the real stack.

Each scenario ends with the same verdict: every browser received exactly the produced events
its filter lets through, once each, in offset order per partition, and the service healed
itself (the test only restarts what it broke, as a supervisor would). Figures go to
`artifacts/faults/`; the docs/fault-tolerance.md table quotes them.
"""

from __future__ import annotations

import asyncio
import re
import signal
import time
from pathlib import Path

import pytest

from scripts.servers import KafkaServer, RedisServer, free_port
from tests.integration.conftest import Stack, started, topic_create
from tests.support.eventsource import BrowserClient
from tests.support.faults import Production, scenario_run
from tests.support.processes import ServiceProcess, http_get

pytestmark = pytest.mark.faults

OUTAGE_SECONDS = 10.0  # how long Kafka or Redis stays down
FAULT_AT = 300  # events produced before the fault


def fault_env(**overrides: str) -> dict[str, str]:
    """Short reconnect hints and heartbeats, so browsers come back and watchdogs see silence fast."""
    return {**overrides, "SSE_RETRY_MS": "500", "SSE_HEARTBEAT_INTERVAL": "2"}


@pytest.fixture
def fault_stack(env: dict[str, str], tmp_path: Path):
    stack = Stack({**env, **fault_env()}, tmp_path)
    yield stack
    stack.stop_all()


def web(stack: Stack, count: int) -> list[int]:
    ports = [stack.daphne(f"daphne-{chr(ord('a') + i)}")[1] for i in range(count)]
    for port in ports:
        stack.wait_ready(port)
    return ports


async def status_status(port: int) -> int | None:
    try:
        return (await asyncio.to_thread(http_get, port, "/status"))[0]
    except OSError:
        return None


async def wait_status(ports: list[int], status: int, timeout: float) -> float:
    """Seconds until `/status` answered `status` on every port."""
    started_at = time.monotonic()
    pending = set(ports)
    while pending:
        assert time.monotonic() - started_at < timeout, f"/status never answered {status} on {pending}"
        pending = {port for port in pending if await status_status(port) != status}
    return round(time.monotonic() - started_at, 2)


def all_running(processes: list[ServiceProcess]) -> None:
    for process in processes:
        assert process.is_running(), f"{process.name} died:\n{process.log_text()[-3000:]}"


async def test_kafka_broker_stopped_for_ten_seconds_mid_stream(env, redis_server, tmp_path, capsys):
    kafka = started(lambda n: KafkaServer(
        port=free_port(), controller_port=free_port(), data_dir=tmp_path / f"kafka{n}"
    ))
    stack = Stack({**env, **fault_env(KAFKA_BROKERS=kafka.bootstrap)}, tmp_path)
    try:
        await topic_create(kafka.bootstrap, env["KAFKA_TOPIC"])
        consumer = stack.consumer()
        ports = web(stack, 2)

        async def fault(production: Production, clients: list[BrowserClient]):
            await production.wait_sent(FAULT_AT)
            await asyncio.to_thread(kafka.stop)
            stopped_at = time.monotonic()
            await asyncio.sleep(OUTAGE_SECONDS / 2)
            for client in clients:
                client.drop()  # browsers reconnect while Kafka is away
            await asyncio.sleep(OUTAGE_SECONDS / 2)
            await asyncio.to_thread(kafka.start)
            healed_at = time.monotonic()
            return healed_at, {"outage_s": round(healed_at - stopped_at, 1)}

        figures = await scenario_run(
            "kafka-restart", bootstrap=kafka.bootstrap, topic=env["KAFKA_TOPIC"], ports=ports,
            fault=fault, capsys=capsys,
        )
        all_running(stack.processes)
        await wait_status(ports, 200, timeout=30)
        figures.assert_exact()
        assert consumer.is_running()
    finally:
        stack.stop_all()
        kafka.stop()


@pytest.fixture
def redis_alone(tmp_path: Path):
    """A Redis of this test's own, to stop and start without disturbing the session's."""
    server = started(lambda n: RedisServer(port=free_port(), data_dir=tmp_path / f"redis{n}"))
    yield server
    server.stop()


async def redis_outage(redis: RedisServer, ports: list[int], clients: list[BrowserClient], during=None):
    """Stop Redis for OUTAGE_SECONDS (browsers reconnect meanwhile); start it again."""
    await asyncio.to_thread(redis.stop)
    stopped_at = time.monotonic()
    not_ready_s = await wait_status(ports, 503, timeout=OUTAGE_SECONDS)
    if during is not None:
        await during
    for client in clients:
        client.drop()
    await asyncio.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - stopped_at)))
    await asyncio.to_thread(redis.start)
    healed_at = time.monotonic()
    ready_again_s = await wait_status(ports, 200, timeout=60)
    return healed_at, {
        "outage_s": round(healed_at - stopped_at, 1),
        "status_503_after_s": not_ready_s,
        "status_200_again_after_s": ready_again_s,
    }


async def test_redis_stopped_and_restarted_mid_stream(env, redis_alone, tmp_path, capsys):
    stack = Stack({**env, **fault_env(REDIS_URL=redis_alone.url)}, tmp_path)
    try:
        stack.consumer()
        ports = web(stack, 2)

        async def fault(production: Production, clients: list[BrowserClient]):
            await production.wait_sent(FAULT_AT)
            return await redis_outage(redis_alone, ports, clients)

        figures = await scenario_run(
            "redis-restart", bootstrap=env["KAFKA_BROKERS"], topic=env["KAFKA_TOPIC"], ports=ports,
            fault=fault, capsys=capsys,
        )
        all_running(stack.processes)
        await wait_status(ports, 200, timeout=30)
        figures.assert_exact()
    finally:
        stack.stop_all()


async def test_events_produced_only_while_redis_is_down_arrive_after_it_returns(
    env, redis_alone, tmp_path, capsys
):
    """The burst is published when Redis returns, maybe before a web process resubscribed;
    no later event comes to reveal the hole, so the hub must notice it by itself."""
    stack = Stack({**env, **fault_env(REDIS_URL=redis_alone.url)}, tmp_path)
    try:
        stack.consumer()
        ports = web(stack, 2)

        async def fault(production: Production, clients: list[BrowserClient]):
            await production.wait_sent(FAULT_AT // 3)
            production.total = production.sent + FAULT_AT  # this many more, all during the outage
            return await redis_outage(
                redis_alone, ports, clients, during=production.wait_sent(FAULT_AT // 3 + FAULT_AT)
            )

        figures = await scenario_run(
            "redis-restart-quiet-after", bootstrap=env["KAFKA_BROKERS"], topic=env["KAFKA_TOPIC"],
            ports=ports, fault=fault, capsys=capsys, tail=0, timeout=120,
        )
        all_running(stack.processes)
        await wait_status(ports, 200, timeout=30)
        figures.assert_exact()
    finally:
        stack.stop_all()


async def test_consumer_killed_and_restarted_mid_stream(fault_stack, env, capsys):
    consumer = fault_stack.consumer("consumer-1")
    ports = web(fault_stack, 2)

    async def fault(production: Production, clients: list[BrowserClient]):
        await production.wait_sent(FAULT_AT)
        consumer.signal(signal.SIGKILL)
        await asyncio.to_thread(consumer.process.wait, 10)
        replacement = fault_stack.consumer("consumer-2")  # what a supervisor does
        return time.monotonic(), {"replacement_pid": replacement.process.pid}

    figures = await scenario_run(
        "consumer-sigkill", bootstrap=env["KAFKA_BROKERS"], topic=env["KAFKA_TOPIC"], ports=ports,
        fault=fault, capsys=capsys,
    )
    all_running(fault_stack.processes[1:])
    await wait_status(ports, 200, timeout=30)
    figures.assert_exact()


async def test_web_process_killed_and_its_browsers_move_to_another(fault_stack, env, capsys):
    fault_stack.consumer()
    ports = web(fault_stack, 2)
    victim = fault_stack.processes[1]
    moved: dict[str, int] = {}  # browsers on the victim when it died -> connections so far

    async def fault(production: Production, clients: list[BrowserClient]):
        await production.wait_sent(FAULT_AT)
        victim.signal(signal.SIGKILL)
        moved.update({c.name: c.connections for c in clients if c.port == ports[0] and c.connected})
        await asyncio.to_thread(victim.process.wait, 10)
        return time.monotonic(), {"killed": victim.name, "browsers_on_killed": len(moved)}

    figures = await scenario_run(
        "daphne-sigkill", bootstrap=env["KAFKA_BROKERS"], topic=env["KAFKA_TOPIC"], ports=ports,
        fault=fault, capsys=capsys,
    )
    all_running([fault_stack.processes[0], fault_stack.processes[2]])
    await wait_status(ports[1:], 200, timeout=30)
    assert moved, "no browser was on the killed web process"
    figures.assert_exact()


ASSIGNED = re.compile(r"assigned partitions \[(.*)\]")


def assignment(process: ServiceProcess) -> list[str]:
    """The partitions of the consumer's latest assignment, from its log."""
    found = ASSIGNED.findall(process.log_text())
    return re.findall(r"'([^']+)'", found[-1]) if found else []


@pytest.mark.kafka_oldest
async def test_scale_out_two_consumers_two_web_processes_and_a_rebalance(fault_stack, env, capsys):
    consumers = [fault_stack.consumer("consumer-a"), fault_stack.consumer("consumer-b")]
    ports = web(fault_stack, 2)
    every_partition = [f"{env['KAFKA_TOPIC']}:{p}" for p in range(3)]
    deadline = time.monotonic() + 60
    while True:
        split = {consumer.name: assignment(consumer) for consumer in consumers}
        if all(split.values()) and sorted(sum(split.values(), [])) == every_partition:
            break
        assert time.monotonic() < deadline, f"the two consumers never split the partitions: {split}"
        await asyncio.sleep(0.1)

    async def fault(production: Production, clients: list[BrowserClient]):
        await production.wait_sent(FAULT_AT)
        # SIGTERM: it leaves the group and the other one takes every partition.
        await asyncio.to_thread(consumers[0].stop)
        return time.monotonic(), {"split": split}

    figures = await scenario_run(
        "scale-out-rebalance", bootstrap=env["KAFKA_BROKERS"], topic=env["KAFKA_TOPIC"], ports=ports,
        fault=fault, capsys=capsys,
    )
    assert len(assignment(consumers[1])) == 3
    all_running(fault_stack.processes[1:])
    await wait_status(ports, 200, timeout=30)
    figures.assert_exact()
