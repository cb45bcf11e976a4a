"""The real stack for integration tests: Kafka (KRaft) and Redis for the whole session,
and per test a fresh topic, Redis namespace, Daphne and `consume_events`.

A test marked `kafka_oldest` runs twice: on the newest Kafka (KAFKA_VERSION) and on the oldest
release docs/production.md promises (KAFKA_OLDEST_VERSION), each a broker of its own for the session."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer

from scripts.servers import KAFKA_OLDEST_VERSION, KAFKA_VERSION, KafkaServer, RedisServer, free_port
from scripts.servers.apicurio import ApicurioServer
from scripts.topics import topic_create as topic_create_with
from tests.support.postgres import PostgresServer
from tests.support.processes import (
    ROOT,
    ServiceProcess,
    consumer_start,
    daphne_start,
    http_get,
    service_env,
    wait_until,
)

PARTITIONS = 3
logger = logging.getLogger(__name__)


@pytest.fixture(scope="session")
def stack_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("stack")


def started(make: Callable[[int], KafkaServer | RedisServer | ApicurioServer], attempts: int = 3):
    """Start a server; a port picked free can be taken by another process before the
    server binds it (other test runs share this machine), so try again with new ports."""
    for attempt in range(1, attempts + 1):
        server = make(attempt)
        try:
            server.start()
            return server
        except RuntimeError as error:
            if attempt == attempts:
                raise
            logger.warning("%s failed to start (attempt %s): %s", type(server).__name__, attempt, error)
    raise AssertionError("unreachable")


class KafkaBrokers:
    """One broker per Kafka version for the session, each started when a test first needs it."""

    def __init__(self, stack_dir: Path) -> None:
        self.stack_dir = stack_dir
        self.running: dict[str, KafkaServer] = {}

    def broker(self, version: str) -> KafkaServer:
        if version not in self.running:
            self.running[version] = started(lambda n: KafkaServer(
                port=free_port(), controller_port=free_port(),
                data_dir=self.stack_dir / f"kafka-{version}-{n}", version=version,
            ))
        return self.running[version]

    def stop_all(self) -> None:
        for server in self.running.values():
            server.stop()


@pytest.fixture(scope="session")
def kafka_brokers(stack_dir: Path) -> Iterator[KafkaBrokers]:
    brokers = KafkaBrokers(stack_dir)
    yield brokers
    brokers.stop_all()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if metafunc.definition.get_closest_marker("kafka_oldest") and "kafka_version" in metafunc.fixturenames:
        versions = [KAFKA_VERSION, KAFKA_OLDEST_VERSION]
        metafunc.parametrize("kafka_version", versions, indirect=True, ids=[f"kafka{v}" for v in versions])


@pytest.fixture
def kafka_version(request: pytest.FixtureRequest) -> str:
    """The Kafka release this test runs on: the newest, unless `kafka_oldest` parametrizes it."""
    return str(getattr(request, "param", KAFKA_VERSION))


@pytest.fixture
def kafka(kafka_brokers: KafkaBrokers, kafka_version: str) -> KafkaServer:
    """The session's broker of this test's Kafka version (shared: each test makes its own topic)."""
    return kafka_brokers.broker(kafka_version)


@pytest.fixture(scope="session")
def postgres(stack_dir: Path) -> Iterator[PostgresServer]:
    """One real PostgreSQL for the session; each test makes its own database in it."""
    server = PostgresServer(stack_dir)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def apicurio(stack_dir: Path) -> Iterator[ApicurioServer]:
    """One real Schema Registry (Apicurio, its Confluent API) for the session's registry tests."""
    server = started(lambda n: ApicurioServer(stack_dir / f"apicurio{n}"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis_server(stack_dir: Path) -> Iterator[RedisServer]:
    server = started(lambda n: RedisServer(port=free_port(), data_dir=stack_dir / f"redis{n}"))
    yield server
    server.stop()


async def topic_create(
    bootstrap: str, name: str, partitions: int = PARTITIONS, configs: dict[str, str] | None = None
) -> None:
    await topic_create_with(bootstrap, name, partitions, configs=configs)


@pytest.fixture
def topic(kafka: KafkaServer) -> str:
    name = f"crm-test-{uuid.uuid4().hex[:10]}"
    asyncio.run(topic_create(kafka.bootstrap, name))
    return name


@pytest.fixture
def env(kafka: KafkaServer, redis_server: RedisServer, topic: str) -> dict[str, str]:
    """The environment of this test's service processes: its own topic, group and Redis prefix."""
    unique = topic.removeprefix("crm-test-")
    return service_env(
        KAFKA_BROKERS=kafka.bootstrap,
        KAFKA_TOPIC=topic,
        KAFKA_GROUP=f"group-{unique}",
        REDIS_URL=redis_server.url,
        REDIS_PREFIX=f"test-{unique}",
    )


class Stack:
    """Starts this test's service processes and stops them all at the end."""

    def __init__(self, env: dict[str, str], log_dir: Path) -> None:
        self.env = env
        self.log_dir = log_dir
        self.processes: list[ServiceProcess] = []

    def daphne(
        self, name: str = "daphne", *, cwd: Path = ROOT, port: int | None = None, plain: bool = False,
        listen_fd: int | None = None, command: list[str] | None = None, env: dict[str, str] | None = None,
    ) -> tuple[ServiceProcess, int]:
        """A web process on a free port (or `port`); see `daphne_start` for the other options.
        `env` adds to the stack's environment for this process only."""
        port = port or free_port()
        process = daphne_start(
            {**self.env, **(env or {})}, port, self.log_dir, name=name, cwd=cwd, plain=plain,
            listen_fd=listen_fd, command=command,
        )
        self.processes.append(process)
        return process, port

    def consumer(
        self, name: str = "consumer", *, cwd: Path = ROOT, command: list[str] | None = None,
    ) -> ServiceProcess:
        process = consumer_start(self.env, self.log_dir, name=name, cwd=cwd, command=command)
        self.processes.append(process)
        return process

    def add(self, process: ServiceProcess) -> ServiceProcess:
        """Another process of this test (nginx, say), stopped with the rest, before them."""
        self.processes.append(process)
        return process

    def wait_ready(self, port: int, timeout: float = 60, *, path: str = "/status") -> None:
        """Until everything is well: this process ready, and upstream too (a consumer heartbeat
        came through the layer, so events flow). `/readyz` says the first half only; a previous
        release without `/status` is asked that."""
        wait_until(lambda: http_get(port, path)[0] == 200, timeout=timeout, what=f"{path} 200")

    def stop_all(self) -> None:
        for process in reversed(self.processes):
            process.stop()


@pytest.fixture
def stack(env: dict[str, str], tmp_path: Path) -> Iterator[Stack]:
    running = Stack(env, tmp_path)
    yield running
    running.stop_all()


async def produce(
    bootstrap: str, topic: str, values: list[bytes | None], *, keys: list[bytes | None] | None = None,
    partitions: list[int] | None = None, headers: list | None = None, max_request_size: int = 1048576,
) -> list[tuple[int, int]]:
    """Produce values in order; return (partition, offset) of each. `max_request_size` is the
    producer's limit (aiokafka's default; a larger record needs a topic that takes it too)."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", max_request_size=max_request_size)
    await producer.start()
    try:
        futures = [
            await producer.send(
                topic, value,
                key=keys[i] if keys else None,
                partition=partitions[i] if partitions else None,
                headers=headers[i] if headers else None,
            )
            for i, value in enumerate(values)
        ]
        metadata = [await future for future in futures]
        return [(m.partition, m.offset) for m in metadata]
    finally:
        await producer.stop()


def json_values(count: int, **extra) -> list[bytes]:
    return [json.dumps({"type": "deal.updated", "seq": i, **extra}).encode() for i in range(count)]
