"""`aetherlink-web --workers 2`: two workers on one port, the kernel spreading the streams
(SO_REUSEPORT), a worker killed and restarted, `/metrics` for the host, SIGTERM for all."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
import time
from collections import Counter

import pytest

from scripts.servers import KafkaServer, free_port
from tests.integration.conftest import Stack, json_values, produce
from tests.support.eventsource import BrowserClient
from tests.support.faults import clients_connected
from tests.support.processes import ServiceProcess, async_wait_until, http_get, wait_until
from tests.support.worker_sockets import children, connection_owners, listeners

pytestmark = pytest.mark.integration

CLIENTS = 200
STREAMS_CONNECTED = re.compile(r"^aetherlink_sse_streams_connected (\S+)$", re.MULTILINE)


def workers_start(stack: Stack, port: int) -> ServiceProcess:
    command = [sys.executable, "-m", "crm_events.server", "-b", "127.0.0.1", "-p", str(port),
               "--workers", "2"]
    supervisor = stack.add(ServiceProcess("web-workers", command, stack.env, stack.log_dir))
    wait_until(lambda: listeners(port) == 2 or not supervisor.is_running(), timeout=60, what="two workers")
    assert supervisor.is_running(), supervisor.log_text()
    # Each /readyz is a new connection, which the kernel hands either worker.
    wait_until(lambda: all(http_get(port, "/readyz")[0] == 200 for _ in range(20)), timeout=60,
               what="both workers ready")
    return supervisor


def streams_connected(port: int) -> float:
    status, body = http_get(port, "/metrics")
    assert status == 200, body
    found = STREAMS_CONNECTED.search(body.decode())
    assert found, body
    return float(found.group(1))


def served_by(clients: list[BrowserClient], port: int, workers: list[int]) -> dict[int, list[BrowserClient]]:
    owners = connection_owners(port, workers)
    by_worker: dict[int, list[BrowserClient]] = {pid: [] for pid in workers}
    for client in clients:
        by_worker[owners[client.local_port]].append(client)
    return by_worker


def have_all(clients: list[BrowserClient], positions: list[tuple[int, int]]) -> bool:
    return all(set(positions) <= client.arrivals.keys() for client in clients)


async def test_two_workers_share_one_port_survive_a_killed_worker_and_stop_with_goodbyes(
    stack: Stack, kafka: KafkaServer, topic: str, capsys,
):
    stack.env["SSE_RETRY_MS"] = "300"  # the clients of the killed worker come back quickly
    stack.env["SSE_HEARTBEAT_INTERVAL"] = "2"  # well inside the clients' 15 s silence watchdog
    port = free_port()
    stack.consumer()
    supervisor = workers_start(stack, port)
    workers = children(supervisor.process.pid)
    assert len(workers) == 2
    deadline = time.monotonic() + 240
    clients = [BrowserClient(f"c{n}", [port], "", lambda record: True, seed=n) for n in range(CLIENTS)]
    tasks = [asyncio.create_task(client.run(deadline)) for client in clients]
    try:
        await clients_connected(clients)
        by_worker = served_by(clients, port, workers)
        spread = [len(by_worker[pid]) for pid in workers]
        assert min(spread) >= CLIENTS // 4, spread
        # /metrics through the shared port, whichever worker answers: the host's streams.
        assert [streams_connected(port) for _ in range(6)] == [CLIENTS] * 6

        before = await produce(kafka.bootstrap, topic, json_values(20, part="before"))
        await async_wait_until(lambda: have_all(clients, before), timeout=60, what="events to reach all")

        killed, survivor = workers
        moved = by_worker[killed]
        os.kill(killed, signal.SIGKILL)
        after = await produce(kafka.bootstrap, topic, json_values(20, part="after"))
        await async_wait_until(lambda: have_all(clients, before + after), timeout=90,
                               what="events after the kill")
        for client in clients:
            counts = Counter((event["partition"], event["offset"]) for event in client.received)
            assert sorted(counts) == sorted(before + after) and set(counts.values()) == {1}, client.name
        # The killed worker's clients came back (on the survivor: the killed one's socket is
        # gone; a resume that meets a busy Kafka ends with a `resync` goodbye and resumes again),
        # the survivor's clients never noticed.
        assert min(client.connections for client in moved) >= 2
        stayed = by_worker[survivor]
        assert [client.connections for client in stayed] == [1] * len(stayed), [c.stalls for c in stayed]
        wait_until(lambda: len(children(supervisor.process.pid)) == 2, timeout=30, what="the restart")
        restarted = next(pid for pid in children(supervisor.process.pid) if pid != survivor)
        assert f"(pid {killed}) was killed by signal SIGKILL" in supervisor.log_text()
        wait_until(lambda: listeners(port) == 2, timeout=60, what="the restarted worker to listen")
        # The dead worker's streams are no longer counted; the restarted one takes new streams.
        await async_wait_until(lambda: streams_connected(port) == CLIENTS, timeout=30,
                               what="the host's streams, without the dead worker's")
        latecomers = [BrowserClient(f"late{n}", [port], "", lambda record: True, seed=n) for n in range(20)]
        tasks += [asyncio.create_task(client.run(deadline)) for client in latecomers]
        await clients_connected(latecomers)
        on_restarted = served_by(latecomers, port, [survivor, restarted])[restarted]
        assert on_restarted, "no stream on the restarted worker"

        supervisor.signal(signal.SIGTERM)
        everyone = clients + latecomers
        await async_wait_until(lambda: all(client.farewells["shutdown"] >= 1 for client in everyone),
                               timeout=30, what="every stream's goodbye frame")
        code = await asyncio.to_thread(supervisor.process.wait, 30)
        assert code == 0, supervisor.log_text()
        assert listeners(port) == 0
        with capsys.disabled():
            print(f"\nWORKERS: {CLIENTS} streams spread {spread[0]} / {spread[1]}; "
                  f"{len(moved)} resumed on the other worker after SIGKILL "
                  f"({sum(c.connections - 2 for c in moved)} resumed again, "
                  f"{sum(c.farewells['resync'] for c in moved)} after a resync goodbye)")
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
