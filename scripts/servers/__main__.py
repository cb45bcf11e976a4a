"""Real Kafka (KRaft) and Redis as plain loopback processes, for the test session and `make dev`.

Our machines run no Docker engine, so we run the genuine servers as child processes: Apache Kafka
from its Maven Central jars (fetched once per machine, see kafka_jars_dir) and Debian's
redis-server. Each server runs in its own session and keeps a PID file and a log file in its data
directory, so another process (``python -m scripts.servers down``) can find it and stop it by
its own PID. The module imports only the standard library: the Kafka readiness check speaks the
Kafka wire protocol itself, so the CLI works from any Python 3.11.

    python -m scripts.servers up --state-dir .local/dev [--kafka-port 9092]
        [--kafka-controller-port 9093] [--redis-port 6379] [--kafka-version 4.4.0]
    python -m scripts.servers status --state-dir .local/dev
    python -m scripts.servers down --state-dir .local/dev
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from scripts.servers.base import KAFKA_VERSION
from scripts.servers.kafka import KafkaServer
from scripts.servers.redis import RedisServer

logger = logging.getLogger(__name__)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m scripts.servers", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=("up", "down", "status"))
    parser.add_argument(
        "--state-dir",
        type=Path,
        required=True,
        help="holds kafka/ and redis/ data dirs with their PID and log files",
    )
    parser.add_argument("--kafka-port", type=int, default=9092)
    parser.add_argument("--kafka-controller-port", type=int, default=9093)
    parser.add_argument("--redis-port", type=int, default=6379)
    parser.add_argument(
        "--kafka-version",
        default=KAFKA_VERSION,
        help="the Apache Kafka release to run, 3.9.1 or newer (its jars are fetched once per machine)",
    )
    return parser


def _services(args: argparse.Namespace) -> list[tuple[str, KafkaServer | RedisServer, str]]:
    kafka = KafkaServer(
        args.kafka_port, args.kafka_controller_port, args.state_dir / "kafka", version=args.kafka_version
    )
    redis = RedisServer(args.redis_port, args.state_dir / "redis")
    return [("kafka", kafka, kafka.bootstrap), ("redis", redis, redis.url)]


def _up(name: str, server: KafkaServer | RedisServer, address: str) -> None:
    pid = server.pid
    if pid is not None and not server.ready():
        raise RuntimeError(
            f"{name}: pid {pid} from {server.data_dir} runs but does not answer on "
            f"{address}; run `down` first or see {server.log_file}"
        )
    verb = "reusing" if pid is not None else "started"
    server.start()
    print(f"{name}: {verb} pid {server.pid}, ready at {address} (log {server.log_file})", flush=True)


def _down(name: str, server: KafkaServer | RedisServer, address: str) -> None:
    pid = server.pid
    server.stop()
    print(f"{name}: stopped pid {pid}" if pid is not None else f"{name}: not running", flush=True)


def _status(name: str, server: KafkaServer | RedisServer, address: str) -> None:
    pid = server.pid
    if pid is None:
        print(f"{name}: not running", flush=True)
        return
    state = "ready" if server.ready() else "NOT answering"
    print(f"{name}: pid {pid}, {state} at {address}", flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    command = {"up": _up, "down": _down, "status": _status}[args.command]
    try:
        for name, server, address in _services(args):
            command(name, server, address)
    except RuntimeError as exc:
        logger.error("%s", exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
