"""The real stack for one benchmark run: Kafka and Redis (scripts.localstack, on free ports,
unless given), a fresh topic, one `manage.py consume_events` and ONE Daphne process serving
`bench.asgi_modes:application`. Every process is stopped by its own PID at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
import uuid
from pathlib import Path

from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from bench.events import PARTITIONS
from bench.waits import NoAnswer, bounded
from scripts.localstack import KafkaServer, RedisServer, free_port
from tests.support.processes import ServiceProcess, http_get, http_status_or_none, service_env, wait_until

READY_TIMEOUT = 90.0
GONE_TIMEOUT = 10.0
TOPIC_TIMEOUT = 60.0
HTTP_TIMEOUT = 10.0  # for each socket operation of a request to the bench's Daphne
HTTP_TOTAL = 30.0  # for the whole request


def _gone_ensure(pid: int) -> None:
    """Make sure a service process we started has really exited; SIGKILL it by its PID if not.

    Seen once after the run was cancelled by SIGTERM: `Popen.wait` returned while Daphne and the
    consumer, having logged their stop, were still running (and exited on a second SIGTERM).
    """
    deadline = time.monotonic() + GONE_TIMEOUT
    while _ours_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    if _ours_alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _ours_alive(pid: int) -> bool:
    """Still running, and still our Daphne or consumer (a PID can be reused)."""
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return (b"bench.asgi_modes" in command or b"consume_events" in command) and _alive(pid)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


class BenchStack:
    def __init__(self, run_dir: Path, *, kafka_bootstrap: str | None, redis_url: str | None) -> None:
        self.run_dir = run_dir
        self.kafka = None if kafka_bootstrap else KafkaServer(
            port=free_port(), controller_port=free_port(), data_dir=run_dir / "kafka")
        self.redis = None if redis_url else RedisServer(port=free_port(), data_dir=run_dir / "redis")
        self.kafka_bootstrap = kafka_bootstrap or self.kafka.bootstrap
        self.redis_url = redis_url or self.redis.url
        unique = uuid.uuid4().hex[:10]
        self.topic = f"bench-{unique}"
        self.env = service_env(
            KAFKA_BROKERS=self.kafka_bootstrap, KAFKA_TOPIC=self.topic, KAFKA_GROUP=f"bench-{unique}",
            REDIS_URL=self.redis_url, REDIS_PREFIX=f"bench-{unique}",
            # The service's defaults, not the test suite's fast heartbeats.
            CONSUMER_HEARTBEAT_INTERVAL="5", READY_HEARTBEAT_MAX_AGE="15",
            DJANGO_SECRET_KEY="benchmark-only-key",
            # Every load client connects from 127.0.0.1: the per-address and per-process stream
            # limits (200 and 2,000 by default) would refuse the benchmark's own clients.
            SSE_MAX_STREAMS="20000", SSE_MAX_STREAMS_PER_CLIENT="20000",
        )
        self.port = free_port()
        self.processes: list[ServiceProcess] = []
        self.daphne: ServiceProcess | None = None
        self.consumer: ServiceProcess | None = None
        self.stopped = False  # ends a readiness wait still running in its thread

    @property
    def pids(self) -> dict[str, int]:
        pids = {"daphne": self.daphne.process.pid, "consumer": self.consumer.process.pid}
        for name, server in (("kafka", self.kafka), ("redis", self.redis)):
            if server is not None and server.pid is not None:
                pids[name] = server.pid
        return pids

    async def start(self) -> None:
        if self.kafka is not None:
            await asyncio.to_thread(self.kafka.start)
        if self.redis is not None:
            await asyncio.to_thread(self.redis.start)
        await self._topic_create()
        self.consumer = self._spawn("consumer", [sys.executable, "manage.py", "consume_events"])
        self.daphne = self._spawn("daphne", [
            sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(self.port),
            "bench.asgi_modes:application",
        ])
        await asyncio.to_thread(self._wait_ready)

    def _spawn(self, name: str, args: list[str]) -> ServiceProcess:
        process = ServiceProcess(name, args, self.env, self.run_dir)
        self.processes.append(process)
        return process

    def _wait_ready(self) -> None:
        daphne = self.daphne
        wait_until(lambda: self.stopped or not daphne.is_running()
                   or http_status_or_none(self.port, "/healthz") == 200,
                   timeout=READY_TIMEOUT, what="daphne /healthz")
        if not daphne.is_running():
            raise RuntimeError(f"daphne exited:\n{daphne.log_text()[-3000:]}")
        wait_until(lambda: self.stopped or http_status_or_none(self.port, "/readyz") == 200,
                   timeout=READY_TIMEOUT, what="/readyz 200 (consumer heartbeat reached daphne)")

    async def _topic_create(self) -> None:
        await bounded(self._topic_create_unbounded(), TOPIC_TIMEOUT,
                      f"Kafka at {self.kafka_bootstrap} (creating topic {self.topic})")

    async def _topic_create_unbounded(self) -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=self.kafka_bootstrap)
        await admin.start()
        try:
            await admin.create_topics([NewTopic(self.topic, PARTITIONS, 1)])
        finally:
            await admin.close()

    async def get(self, path: str) -> tuple[int, object]:
        """GET `path` from the bench's Daphne; NoAnswer (a TimeoutError) if it does not answer."""
        what = f"Daphne (127.0.0.1:{self.port}, GET {path})"
        try:
            return await bounded(asyncio.to_thread(http_get, self.port, path, HTTP_TIMEOUT), HTTP_TOTAL, what)
        except NoAnswer:
            raise
        except TimeoutError as error:  # a socket timeout in http_get
            raise NoAnswer(f"{what} did not answer within {HTTP_TIMEOUT:g} s") from error

    def stop(self) -> None:
        self.stopped = True
        for process in reversed(self.processes):
            pid = process.process.pid
            process.stop()
            _gone_ensure(pid)
        for server in (self.redis, self.kafka):
            if server is not None:
                server.stop()
