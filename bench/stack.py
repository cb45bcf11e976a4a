"""The real stack for one benchmark run: Kafka and Redis (scripts.servers, on free ports,
unless given), a fresh topic, one `manage.py consume_events` and ONE web process (bench/web.py:
AetherLink's server with `bench.asgi_modes:application`). The nginx mode adds web processes
and nginx in front of them (`webs_scale`, `nginx_start`). Every process is stopped by its own
PID at the end.
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
from typing import Any

from bench.events import PARTITIONS
from bench.waits import NoAnswer, bounded
from scripts.nginx import Nginx, certificate_make, nginx_find
from scripts.processes import ServiceProcess, http_get, http_status_or_none, wait_until
from scripts.servers import KafkaServer, RedisServer, free_port
from scripts.servers.base import pid_alive, pid_matches
from scripts.topics import topic_create

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
    ours = pid_matches(pid, ["bench.web"]) or pid_matches(pid, ["consume_events"])
    return ours and pid_alive(pid)


class BenchStack:
    def __init__(
        self, run_dir: Path, *, kafka_bootstrap: str | None, redis_url: str | None, jwt_key: str = ""
    ) -> None:
        self.run_dir = run_dir
        # Servers of its own, unless it was given running ones.
        self.kafka: KafkaServer | None = None
        self.redis: RedisServer | None = None
        if not kafka_bootstrap:
            self.kafka = KafkaServer(port=free_port(), controller_port=free_port(),
                                     data_dir=run_dir / "kafka")
            kafka_bootstrap = self.kafka.bootstrap
        if not redis_url:
            self.redis = RedisServer(port=free_port(), data_dir=run_dir / "redis")
            redis_url = self.redis.url
        self.kafka_bootstrap: str = kafka_bootstrap
        self.redis_url: str = redis_url
        unique = uuid.uuid4().hex[:10]
        self.topic = f"bench-{unique}"
        # The consumer's own /metrics: the ingest mode reads what it has published from there.
        self.consumer_metrics_port = free_port()
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("KAFKA_", "REDIS"))}
        self.env.update(
            KAFKA_BROKERS=self.kafka_bootstrap, KAFKA_TOPIC=self.topic, KAFKA_GROUP=f"bench-{unique}",
            REDIS_URL=self.redis_url, REDIS_PREFIX=f"bench-{unique}",
            DJANGO_SECRET_KEY="benchmark-only-key", DJANGO_DEBUG="false", PYTHONUNBUFFERED="1",
            # The service's heartbeat defaults; the consumer reconnects within a second.
            CONSUMER_HEARTBEAT_INTERVAL="5", READY_HEARTBEAT_MAX_AGE="15", KAFKA_RETRY_BACKOFF_MAX="1",
            # Every load client connects from 127.0.0.1: the per-address and per-process stream
            # limits (200 and 2,000 by default) would refuse the benchmark's own clients (up to
            # 20,000 and more of them, see --client-procs).
            SSE_MAX_STREAMS="50000", SSE_MAX_STREAMS_PER_CLIENT="50000",
            CONSUMER_METRICS_PORT=str(self.consumer_metrics_port),
        )
        if jwt_key:  # streams need a token (the tenant variant's grants); many share a subject
            self.env.update(SSE_AUTH_MODE="jwt", SSE_JWT_KEY=jwt_key, SSE_MAX_STREAMS_PER_SUBJECT="50000")
        self.jwt_key = jwt_key
        self.processes: list[ServiceProcess] = []
        self.webs: list[tuple[ServiceProcess, int]] = []  # (process, port); the first is `daphne`
        self.consumer: ServiceProcess | None = None
        self.nginx: Nginx | None = None
        self.tls_dir = run_dir / "tls"  # nginx's throwaway certificate (fullchain.pem, privkey.pem)
        self.stopped = False  # ends a readiness wait still running in its thread

    @property
    def daphne(self) -> ServiceProcess:
        """The first web process: every mode but nginx uses it alone."""
        return self.webs[0][0]

    @property
    def port(self) -> int:
        return self.webs[0][1]

    @property
    def web_ports(self) -> list[int]:
        return [port for _, port in self.webs]

    @property
    def pids(self) -> dict[str, int]:
        pids = {"daphne" if index == 0 else f"daphne-{index + 1}": process.process.pid
                for index, (process, _) in enumerate(self.webs)}
        if self.consumer is not None:
            pids["consumer"] = self.consumer.process.pid
        for name, server in (("kafka", self.kafka), ("redis", self.redis)):
            if server is not None and server.pid is not None:
                pids[name] = server.pid
        if self.nginx is not None:
            pids.update({f"nginx-{index + 1}": pid for index, pid in enumerate(self.nginx.worker_pids())})
        return pids

    async def start(self) -> None:
        if self.kafka is not None:
            await asyncio.to_thread(self.kafka.start)
        if self.redis is not None:
            await asyncio.to_thread(self.redis.start)
        await self._topic_create()
        self.consumer = self._spawn("consumer", [sys.executable, "manage.py", "consume_events"])
        await self.web_add()

    def _spawn(self, name: str, args: list[str]) -> ServiceProcess:
        process = ServiceProcess(name, args, self.env, self.run_dir)
        self.processes.append(process)
        return process

    async def web_add(self) -> int:
        """One more web process on a free port, once it is ready; its port."""
        port, name = free_port(), "daphne" if not self.webs else f"daphne-{len(self.webs) + 1}"
        process = self._spawn(name, [sys.executable, "-m", "bench.web", "-b", "127.0.0.1", "-p", str(port)])
        self.webs.append((process, port))
        await asyncio.to_thread(self._wait_ready, process, port)
        return port

    async def web_workers_start(self, workers: int) -> tuple[ServiceProcess, int]:
        """`aetherlink-web --workers N` (bench/web.py) on a free port of its own, once ready: the
        peer mode's AetherLink. Not one of `webs`: the other modes never see it."""
        port = free_port()
        process = self._spawn("aetherlink-workers", [sys.executable, "-m", "bench.web", "-b", "127.0.0.1",
                                                     "-p", str(port), "--workers", str(workers)])
        await asyncio.to_thread(self._wait_ready, process, port)
        return process, port

    def process_adopt(self, process: ServiceProcess) -> None:
        """Stop `process` (started elsewhere: Centrifugo) with the stack."""
        self.processes.append(process)

    async def webs_scale(self, count: int) -> None:
        """Run exactly `count` web processes: start new ones, or stop the last ones."""
        while len(self.webs) < count:
            await self.web_add()
        while len(self.webs) > count:
            process, _ = self.webs.pop()
            await asyncio.to_thread(self._process_stop, process)

    def _wait_ready(self, process: ServiceProcess, port: int) -> None:
        wait_until(lambda: self.stopped or not process.is_running()
                   or http_status_or_none(port, "/healthz") == 200,
                   timeout=READY_TIMEOUT, what=f"{process.name} /healthz")
        if not process.is_running():
            raise RuntimeError(f"{process.name} exited:\n{process.log_text()[-3000:]}")
        # /status, not /readyz: everything upstream too (a consumer heartbeat reached this process).
        wait_until(lambda: self.stopped or http_status_or_none(port, "/status") == 200,
                   timeout=READY_TIMEOUT, what=f"/status 200 (consumer heartbeat reached {process.name})")

    async def nginx_start(self, *, tls: bool, connections: int) -> Nginx:
        """nginx with docker/nginx.conf in front of the running web processes (see scripts/nginx.py)."""
        folder = self.run_dir / f"nginx-{len(self.webs)}"
        tls_dir = await asyncio.to_thread(certificate_make, self.tls_dir)
        self.nginx = Nginx(nginx_find(), folder, upstreams=[f"127.0.0.1:{port}" for port in self.web_ports],
                           https_port=free_port(), http_port=free_port(), tls_dir=tls_dir, tls=tls,
                           connections=connections, worker_processes="auto")
        await asyncio.to_thread(self.nginx.start)
        assert self.nginx.process is not None  # start() set it, or raised
        self.processes.append(self.nginx.process)
        return self.nginx

    async def nginx_stop(self) -> None:
        if self.nginx is not None:
            nginx, self.nginx = self.nginx, None
            if nginx.process is not None:
                await asyncio.to_thread(self._process_stop, nginx.process)

    async def _topic_create(self) -> None:
        await bounded(topic_create(self.kafka_bootstrap, self.topic, PARTITIONS), TOPIC_TIMEOUT,
                      f"Kafka at {self.kafka_bootstrap} (creating topic {self.topic})")

    async def get(
        self, path: str, port: int | None = None, *, timeout: float = HTTP_TIMEOUT
    ) -> tuple[int, Any]:
        """GET `path` from the first web process (or the one on `port`); NoAnswer (a TimeoutError)
        if it does not answer (`timeout`: seconds for each socket operation, for slow bench-only
        answers)."""
        port = port or self.port
        what = f"Daphne (127.0.0.1:{port}, GET {path})"
        try:
            return await bounded(asyncio.to_thread(http_get, port, path, timeout),
                                 max(HTTP_TOTAL, 3 * timeout), what)
        except NoAnswer:
            raise
        except TimeoutError as error:  # a socket timeout in http_get
            raise NoAnswer(f"{what} did not answer within {timeout:g} s") from error

    def _process_stop(self, process: ServiceProcess) -> None:
        if process in self.processes:
            self.processes.remove(process)
        pid = process.process.pid
        process.stop()
        _gone_ensure(pid)

    def stop(self) -> None:
        self.stopped = True
        for process in reversed(list(self.processes)):
            self._process_stop(process)
        for server in (self.redis, self.kafka):
            if server is not None:
                server.stop()
