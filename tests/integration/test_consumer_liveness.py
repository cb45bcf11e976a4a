"""The consumer's `/livez` against a real consume_events: alive while idle (polls with no
records are progress), stale while its loop is stuck in a publish the channel layer holds
(Redis paused by `CLIENT PAUSE ... WRITE`, as an overloaded or failing-over Redis holds
its clients), and alive again once the publish goes through."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import redis

from crm_events.ingest.liveness import LOOP_STALE
from scripts.servers import RedisServer, free_port
from tests.integration.conftest import Stack, json_values, produce, started
from tests.support.kafka_log import log_read
from tests.support.processes import wait_until

MAX_AGE = 3.0
PAUSE_SECONDS = 12  # under REDIS_SOCKET_TIMEOUT (15 s): the publish is held, not timed out


def livez(port: int) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/livez", timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())
    except OSError:
        return 0, {}


def positions_logged(bootstrap: str, topic: str) -> bool:
    try:
        return bool(asyncio.run(log_read(bootstrap, topic, timeout=10)))
    except Exception:  # noqa: BLE001 - not created or not answering yet: not logged yet
        return False


@pytest.fixture
def own_redis(tmp_path: Path):
    """A Redis of this test's own: pausing it must not hold anyone else's clients."""
    server = started(lambda n: RedisServer(port=free_port(), data_dir=tmp_path / f"redis{n}"))
    yield server
    server.stop()


def test_livez_follows_the_consume_loop_not_the_process(env, kafka, topic, own_redis, tmp_path):
    metrics_port = free_port()
    stack = Stack({**env, "REDIS_URL": own_redis.url, "CONSUMER_METRICS_PORT": str(metrics_port),
                   "CONSUMER_LIVENESS_MAX_AGE": str(MAX_AGE)}, tmp_path)
    try:
        consumer = stack.consumer()
        wait_until(lambda: "assigned partitions" in consumer.log_text(), timeout=60,
                   what="partitions assigned")
        # After an assignment the first idle poll writes a snapshot to the positions log (a
        # producer's start, which a loaded machine may take longer than MAX_AGE over): idle
        # means after that.
        positions_topic = env.get("KAFKA_POSITIONS_TOPIC") or f"{env['KAFKA_GROUP']}.positions"
        wait_until(lambda: positions_logged(kafka.bootstrap, positions_topic), timeout=60,
                   what="the assignment's snapshot in the positions log")
        # Idle: no records at all, for longer than the maximum age; every answer is 200.
        idle_until = time.monotonic() + 2 * MAX_AGE
        while time.monotonic() < idle_until:
            assert livez(metrics_port) == (200, {"ok": True})
            time.sleep(0.25)

        client = redis.Redis.from_url(own_redis.url)
        client.execute_command("CLIENT", "PAUSE", PAUSE_SECONDS * 1000, "WRITE")
        paused_at = time.monotonic()
        asyncio.run(produce(kafka.bootstrap, topic, json_values(1)))
        status, body = wait_until(
            lambda: (lambda answer: answer if answer[0] == 503 else None)(livez(metrics_port)),
            timeout=PAUSE_SECONDS - 1, what="/livez 503 while the publish is held",
        )
        assert time.monotonic() - paused_at < PAUSE_SECONDS, "went stale only after the pause"
        assert body["ok"] is False
        assert body["error"].startswith(LOOP_STALE.split("{")[0])
        assert consumer.is_running()  # the process lives on: only /livez tells

        wait_until(lambda: livez(metrics_port)[0] == 200, timeout=PAUSE_SECONDS + 10, what="/livez 200 again")
        assert time.monotonic() - paused_at >= PAUSE_SECONDS - 1, "alive again before Redis was"
        client.close()
    finally:
        stack.stop_all()
