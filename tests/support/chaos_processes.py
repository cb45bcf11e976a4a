"""The chaos run's service processes: supervised slots, restarts that retry, the consumer's lag."""

from __future__ import annotations

import asyncio
import re
import signal
import time
from collections.abc import Callable
from pathlib import Path

from scripts.servers import KafkaServer, RedisServer
from tests.support.processes import ServiceProcess, daphne_start


class Slot:
    """One supervised service process (consume_events, or a Daphne on its fixed port); each
    start is a new generation with its own log, `<name>-<generation>.log`."""

    def __init__(self, name: str, launch: Callable[[str], ServiceProcess]) -> None:
        self.name = name
        self.launch = launch
        self.generation = 0
        self.lock = asyncio.Lock()  # held by whoever kills or restarts it
        self.process: ServiceProcess | None = None
        self.history: list[ServiceProcess] = []

    async def start(self) -> ServiceProcess:
        self.generation += 1
        self.process = await asyncio.to_thread(self.launch, f"{self.name}-{self.generation}")
        self.history.append(self.process)
        return self.process

    async def kill(self) -> int | None:
        """SIGKILL and reap; the pid it had."""
        if self.process is None:
            return None
        self.process.signal(signal.SIGKILL)
        await asyncio.to_thread(self.process.stop, 10)  # reaps, closes the log
        return self.process.process.pid

    def alive(self) -> bool:
        return self.process is not None and self.process.is_running()

    def stop_all(self) -> None:
        for process in reversed(self.history):
            process.stop()


def daphne_launch(
    env: dict[str, str], port: int, log_dir: Path, name: str, attempts: int = 3
) -> ServiceProcess:
    """Start Daphne on `port`; try again when it could not (the port briefly held elsewhere)."""
    for attempt in range(1, attempts + 1):
        try:
            return daphne_start(env, port, log_dir, name=name if attempt == 1 else f"{name}.{attempt}")
        except AssertionError:
            if attempt == attempts:
                raise
            time.sleep(2)
    raise AssertionError("unreachable")


def server_restart(server: KafkaServer | RedisServer, attempts: int = 3) -> None:
    """Start a stopped Kafka or Redis on its own port and data dir, retrying a failed start."""
    for attempt in range(1, attempts + 1):
        try:
            server.start()
            return
        except RuntimeError:
            if attempt == attempts:
                raise
            time.sleep(2)



LAG_LINE = re.compile(r'^aetherlink_consumer_lag\{(?P<labels>[^}]*)\} (?P<value>\S+)$')


def lag_parse(text: str, topic: str) -> dict[str, float]:
    """`aetherlink_consumer_lag` per partition of `topic` from a Prometheus text exposition."""
    lag: dict[str, float] = {}
    for line in text.splitlines():
        match = LAG_LINE.match(line)
        if match is None:
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', match["labels"]))
        if labels.get("topic") == topic:
            lag[labels["partition"]] = float(match["value"])
    return lag


def lag_zero(lag: dict[str, float] | None, partitions: int = 3) -> bool:
    return lag is not None and len(lag) == partitions and all(value == 0 for value in lag.values())
