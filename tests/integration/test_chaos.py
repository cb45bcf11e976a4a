"""The chaos run (docs/fault-tolerance.md): faults at moments drawn from a seed, then the verdict.

`CHAOS_SECONDS` (default 180), `CHAOS_SEED` (default a fresh one, printed first), `CHAOS_ACTIONS`
(default all: kafka,redis,consumer,daphne,record,layer). `make test-chaos` runs only this test,
for 30 minutes unless told otherwise. It starts its own Kafka and Redis, since it stops them.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from scripts.servers import KafkaServer, RedisServer, free_port
from tests.integration.conftest import started, topic_create
from tests.support import chaos_figures
from tests.support.chaos import ARTIFACTS, ChaosRun
from tests.support.chaos_schedule import actions_parse
from tests.support.processes import service_env

CHAOS_SECONDS = float(os.environ.get("CHAOS_SECONDS") or 180)
# Setup, the last fault's healing, the tail, the bounded catch-up and final checks, teardown.
OVERHEAD_BOUND_S = 300

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(CHAOS_SECONDS + OVERHEAD_BOUND_S)]


@contextlib.contextmanager
def quiet(name: str) -> Iterator[None]:
    logger = logging.getLogger(name)
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


def chaos_seed() -> int:
    text = os.environ.get("CHAOS_SEED", "").strip()
    return int(text) if text else random.SystemRandom().randrange(1, 1_000_000)


def chaos_env(kafka: KafkaServer, redis: RedisServer, topic: str) -> dict[str, str]:
    """Short reconnect hints and heartbeats, as in the fault scenarios; streams live at most 90 s,
    so every client also resumes after a `lifetime` farewell now and then."""
    unique = topic.removeprefix("crm-chaos-")
    return service_env(
        KAFKA_BROKERS=kafka.bootstrap, KAFKA_TOPIC=topic, KAFKA_GROUP=f"group-{unique}",
        REDIS_URL=redis.url, REDIS_PREFIX=f"chaos-{unique}",
        SSE_RETRY_MS="500", SSE_HEARTBEAT_INTERVAL="2", SSE_MAX_LIFETIME="90",
    )


async def test_chaos_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    seed, actions = chaos_seed(), actions_parse(os.environ.get("CHAOS_ACTIONS"))

    def say(line: str) -> None:
        with capsys.disabled():
            print(line, flush=True)

    say(f"\nCHAOS seed={seed} seconds={CHAOS_SECONDS:g} actions={','.join(actions)} "
        f"(replay: CHAOS_SEED={seed} CHAOS_ACTIONS={','.join(actions)})")
    kafka = started(lambda n: KafkaServer(
        port=free_port(), controller_port=free_port(), data_dir=tmp_path / f"kafka{n}"
    ))
    redis: RedisServer | None = None
    run: ChaosRun | None = None
    try:
        redis = started(lambda n: RedisServer(port=free_port(), data_dir=tmp_path / f"redis{n}"))
        topic = f"crm-chaos-{uuid.uuid4().hex[:10]}"
        await topic_create(kafka.bootstrap, topic)
        logs = tmp_path / "logs"
        logs.mkdir()
        run = ChaosRun(
            kafka=kafka, redis=redis, env=chaos_env(kafka, redis, topic), log_dir=logs, seed=seed,
            seconds=CHAOS_SECONDS, actions=actions, say=say,
        )
        await run.up()
        with quiet("aiokafka"):  # the run's own producers and readers retry through every outage
            result = await run.run()
    finally:
        if run is not None:
            run.stop_all()
            run.logs_keep()
        if redis is not None:
            redis.stop()
        kafka.stop()
    path = chaos_figures.write(result, ARTIFACTS)
    say(chaos_figures.summary(result))
    say(f"CHAOS figures in {path}, logs in {ARTIFACTS / f'{seed}-logs'}")
    assert result["verdict"]["passed"], "\n".join(result["verdict"]["failures"])
