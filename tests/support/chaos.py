"""The chaos run: for a fixed time, faults at moments drawn from a seed; then heal, and judge.

Two Daphne processes and one `consume_events` run as supervised slots (a process that dies
without being killed by the run is logged as an unexpected exit and started again, as a
supervisor would; the verdict fails on it). While `Production` writes events steadily and the
fleet of `ChaosClient`s reads, reconnects and resumes, the run takes the steps of
`chaos_schedule.schedule(seed)`: stop and restart Kafka or Redis, SIGKILL the consumer or a
Daphne and start a new one on the same port, inject a hostile record or a foreign layer message.
When its time is up it heals everything, produces a tail of events, reads the topic back from
Kafka and lets the clients catch up (bounded). The verdict: each client got exactly its
filtered subset, once, in offset order per partition; hostile records came as the contract
says; nothing foreign reached a client; every web process answers `/status` 200;
`consume_events` is alive with lag 0; no process died unasked.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scripts.servers import KafkaServer, RedisServer, free_port
from tests.support import chaos_figures
from tests.support.chaos_clients import ChaosClient, chaos_fleet
from tests.support.chaos_injections import (
    HOSTILE_RECORDS,
    foreign_messages,
    message_inject,
    record_inject,
)
from tests.support.chaos_processes import Slot, daphne_launch, lag_parse, lag_zero, server_restart
from tests.support.chaos_schedule import KEYS, Step, schedule
from tests.support.eventsource import Position
from tests.support.faults import Production, Record, clients_connected, topic_records
from tests.support.processes import (
    consumer_start,
    http_get,
    http_status_or_none,
)

logger = logging.getLogger(__name__)

RATE = 60.0  # events per second, as in the fault scenarios
TAIL = 300  # events produced after everything healed: the live path must carry them
READY_WAIT = 30.0  # after each fault: how long the web processes get to answer /status 200
CATCH_UP = 60.0  # after the tail: how long the clients get to have everything
# After an injection: longer than READY_HEARTBEAT_MAX_AGE (2 s), so a hub that stopped taking
# layer messages already fails /status when the step's readiness is measured.
INJECTION_SETTLE = 3.0
FINAL_WAIT = 20.0  # /status 200 everywhere and consumer lag 0, at the end
SUPERVISOR_DELAY = 2.0  # a supervisor's restart delay after a process died by itself
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts" / "chaos"


def production_key(seq: int) -> bytes:
    return f"acct-{seq % KEYS}".encode()


def hostile_key(index: int | None) -> bytes | None:
    return None if index is None else f"acct-{index}".encode()




# --- one step's record ------------------------------------------------------------------------


@dataclass
class StepLog:
    step: dict[str, Any]
    started_s: float
    overlapped: list[int]  # steps still in progress when this one started
    broken_s: float | None = None
    healed_s: float | None = None
    ready_after_s: float | None = None  # from heal (3 s after an injection) until every /status said 200
    recovery_s: float | None = None  # from heal until the clients had everything up to then
    recovery_confounded: bool = False  # the next step began before that: its fault may be in it
    detail: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


# --- the run ------------------------------------------------------------------------------------


class ChaosRun:
    def __init__(
        self, *, kafka: KafkaServer, redis: RedisServer, env: dict[str, str], log_dir: Path,
        seed: int, seconds: float, actions: tuple[str, ...], say: Callable[[str], None], web: int = 2,
    ) -> None:
        self.kafka, self.redis = kafka, redis
        self.metrics_port = free_port()
        self.env = {**env, "CONSUMER_METRICS_PORT": str(self.metrics_port)}
        self.topic = env["KAFKA_TOPIC"]
        self.log_dir = log_dir
        self.seed, self.seconds, self.actions, self.say = seed, seconds, actions, say
        self.ports = [free_port() for _ in range(web)]
        self.consumer = Slot("consumer", lambda name: consumer_start(self.env, log_dir, name))
        self.webs = [
            Slot(f"daphne-{chr(ord('a') + i)}",
                 lambda name, port=port: daphne_launch(self.env, port, log_dir, name))
            for i, port in enumerate(self.ports)
        ]
        self.foreign = foreign_messages(self.topic)
        self.steps: list[StepLog] = []
        self.exits: list[dict[str, Any]] = []
        self.hostile: dict[Position, str] = {}
        self.running: dict[int, asyncio.Task[None]] = {}
        self.supervising = True
        self.t0 = time.monotonic()

    def now(self) -> float:
        return round(time.monotonic() - self.t0, 2)

    # --- setup and teardown

    async def up(self) -> None:
        await self.consumer.start()
        for slot in self.webs:
            await slot.start()
        waited = await self.ready_wait(60)
        assert waited is not None, "the web processes never answered /status 200 at the start"

    def stop_all(self) -> None:
        for slot in [*self.webs, self.consumer]:
            slot.stop_all()

    # --- the run

    async def run(self) -> dict[str, Any]:
        clients = chaos_fleet(self.ports, self.topic, seed=self.seed, seconds=self.seconds)
        far = time.monotonic() + self.seconds + 1800
        tasks = [asyncio.create_task(client.run(far), name=client.name) for client in clients]
        production = Production(
            self.kafka.bootstrap, self.topic, total=1 << 62, rate=RATE, key=production_key
        )
        producing = asyncio.create_task(production.run(), name="production")
        supervisor = asyncio.create_task(self.supervise(), name="supervisor")
        try:
            await clients_connected(clients)
            production.started.set()
            self.t0 = time.monotonic()
            await self.chaos(self.t0 + self.seconds)
            healed = await self.heal()
            production.total = min(production.total, production.sent + TAIL)
            await asyncio.wait_for(producing, 120)
            records = await topic_records(self.kafka.bootstrap, self.topic)
            catch_up_s, unfinished = await self.catch_up(clients, tasks, records)
            final = await self.finals()
        finally:
            await self.settle(timeout=300)
            self.supervising = False
            await asyncio.gather(supervisor, return_exceptions=True)
            for task in [*tasks, producing]:
                task.cancel()
            await asyncio.gather(*tasks, producing, return_exceptions=True)
        return chaos_figures.figures(
            self, clients, production, records, healed=healed, catch_up_s=catch_up_s,
            unfinished=unfinished, final=final,
        )

    async def chaos(self, end: float) -> None:
        """Take the schedule's steps until `end`; return when every fault taken has healed."""
        steps = schedule(
            self.seed, self.actions, hostile=list(HOSTILE_RECORDS), foreign=list(self.foreign),
            web=len(self.webs),
        )
        last_start = time.monotonic()
        for step in steps:
            if step.overlap:
                at = last_start + step.after_s
            else:
                await self.settle()
                at = time.monotonic() + step.after_s
            if at > end:
                break
            await asyncio.sleep(max(0.0, at - time.monotonic()))
            last_start = time.monotonic()
            in_progress = [index for index, task in self.running.items() if not task.done()]
            self.running[step.index] = asyncio.create_task(self.step_run(step, in_progress))
        await self.settle()
        await asyncio.sleep(max(0.0, end - time.monotonic()))

    async def settle(self, timeout: float | None = None) -> None:
        """Wait for the steps in progress (each ends healed). They are never cancelled: one
        cancelled while a thread starts a Daphne would leave that process behind."""
        pending = [task for task in self.running.values() if not task.done()]
        if pending:
            await asyncio.wait(pending, timeout=timeout)

    async def step_run(self, step: Step, in_progress: list[int]) -> None:
        entry = StepLog(step=step.describe(), started_s=self.now(), overlapped=in_progress)
        self.steps.append(entry)
        self.say(f"CHAOS +{entry.started_s:.1f}s step {step.index}: {_step_text(step)}")
        try:
            await getattr(self, f"do_{step.action}")(step, entry)
            if step.action in ("record", "layer"):
                await asyncio.sleep(INJECTION_SETTLE)
            entry.ready_after_s = await self.ready_wait(READY_WAIT)
        except Exception as error:  # noqa: BLE001 - a step that failed is a figure; the verdict fails on it
            entry.error = f"{type(error).__name__}: {error}"
            self.say(f"CHAOS +{self.now():.1f}s step {step.index} failed: {entry.error}")

    # --- the actions: each breaks one part, keeps it down for step.down_s and heals it

    async def do_kafka(self, step: Step, entry: StepLog) -> None:
        await asyncio.to_thread(self.kafka.stop)
        entry.broken_s = self.now()
        await asyncio.sleep(step.down_s)
        await asyncio.to_thread(server_restart, self.kafka)
        entry.healed_s = self.now()

    async def do_redis(self, step: Step, entry: StepLog) -> None:
        await asyncio.to_thread(self.redis.stop)
        entry.broken_s = self.now()
        await asyncio.sleep(step.down_s)
        await asyncio.to_thread(server_restart, self.redis)  # empty: the layer's groups are gone
        entry.healed_s = self.now()

    async def do_consumer(self, step: Step, entry: StepLog) -> None:
        await self._slot_kill(self.consumer, step, entry)

    async def do_daphne(self, step: Step, entry: StepLog) -> None:
        await self._slot_kill(self.webs[int(step.target or 0)], step, entry)

    async def _slot_kill(self, slot: Slot, step: Step, entry: StepLog) -> None:
        async with slot.lock:
            entry.detail["killed"] = slot.process.name if slot.process else None
            entry.detail["killed_pid"] = await slot.kill()
            entry.broken_s = self.now()
            await asyncio.sleep(step.down_s)
            started = await slot.start()
            entry.detail["started"] = started.name
            entry.healed_s = self.now()

    async def do_record(self, step: Step, entry: StepLog) -> None:
        entry.broken_s = self.now()
        position = await record_inject(
            self.kafka.bootstrap, self.topic, HOSTILE_RECORDS[str(step.target)],
            partition=int(step.partition or 0), key=hostile_key(step.key),
        )
        self.hostile[position] = str(step.target)
        entry.detail["position"] = list(position)
        entry.healed_s = self.now()

    async def do_layer(self, step: Step, entry: StepLog) -> None:
        # Into a group with every web process in it: just after Redis came back the group is
        # empty until the hubs rejoin, and a message sent then reaches nobody. /status 200 says
        # a consumer heartbeat reached each hub through the group since.
        entry.detail["hubs_in_group_after_s"] = await self.ready_wait(READY_WAIT)
        entry.broken_s = self.now()
        await message_inject(self.env["REDIS_URL"], self.env["REDIS_PREFIX"], self.foreign[str(step.target)])
        entry.healed_s = self.now()

    # --- watching

    async def supervise(self) -> None:
        """Restart, as a supervisor would, a process that died without the run killing it."""
        while self.supervising:
            for slot in [self.consumer, *self.webs]:
                if slot.lock.locked() or slot.process is None or slot.alive():
                    continue
                async with slot.lock:
                    if slot.alive():
                        continue
                    dead = slot.process
                    dead.stop()
                    self.exits.append({
                        "at_s": self.now(), "process": dead.name, "code": dead.process.returncode,
                        "log_tail": dead.log_text().splitlines()[-25:],
                    })
                    self.say(f"CHAOS +{self.now():.1f}s {dead.name} died by itself (exit "
                             f"{dead.process.returncode}); restarting it")
                    await asyncio.sleep(SUPERVISOR_DELAY)
                    await slot.start()
            await asyncio.sleep(0.5)

    async def ready_wait(self, timeout: float) -> float | None:
        """Seconds until every web process answered /status 200; None if not within `timeout`."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            statuses = await asyncio.gather(*(self.readyz(port) for port in self.ports))
            if all(status == 200 for status in statuses):
                return round(time.monotonic() - started, 2)
            await asyncio.sleep(0.2)
        return None

    async def readyz(self, port: int) -> int | None:
        return await asyncio.to_thread(http_status_or_none, port, "/status")

    async def readyz_answer(self, port: int) -> tuple[int | None, Any]:
        try:
            return await asyncio.to_thread(http_get, port, "/status")
        except OSError as error:
            return None, repr(error)

    async def consumer_lag(self) -> dict[str, float] | None:
        """The consumer's exported lag per partition of the topic; None if it does not answer."""
        try:
            status, body = await asyncio.to_thread(http_get, self.metrics_port, "/metrics")
        except OSError:
            return None
        if status != 200 or not isinstance(body, bytes):
            return None
        return lag_parse(body.decode(), self.topic)

    # --- the end

    async def heal(self) -> dict[str, Any]:
        """Every fault taken has healed (`chaos` waited for them); restart whatever is still down."""
        restarted = []
        for server in (self.kafka, self.redis):
            if not server.is_running():
                await asyncio.to_thread(server_restart, server)
                restarted.append(type(server).__name__)
        ready_after_s = await self.ready_wait(READY_WAIT)
        ready = "never" if ready_after_s is None else f"after {ready_after_s}s"
        self.say(f"CHAOS +{self.now():.1f}s healed; /status 200 everywhere: {ready}")
        return {"at_s": self.now(), "restarted": restarted, "ready_after_s": ready_after_s}

    async def catch_up(
        self, clients: list[ChaosClient], tasks: list[asyncio.Task[None]], records: list[Record]
    ) -> tuple[float, list[str]]:
        for client in clients:
            client.expected = {record.position for record in records if client.wants(record)}
        started = time.monotonic()
        await asyncio.wait(tasks, timeout=CATCH_UP)
        unfinished = [client.name for client in clients if not client.done()]
        return round(time.monotonic() - started, 2), unfinished

    async def finals(self) -> dict[str, Any]:
        started = time.monotonic()
        ready_after_s = await self.ready_wait(FINAL_WAIT)
        answers = await asyncio.gather(*(self.readyz_answer(port) for port in self.ports))
        lag = await self.consumer_lag()
        while not lag_zero(lag) and time.monotonic() - started < FINAL_WAIT:
            await asyncio.sleep(0.5)
            lag = await self.consumer_lag()
        return {
            "readyz": {str(port): status for port, (status, _) in zip(self.ports, answers, strict=True)},
            "readyz_bodies": {str(port): body for port, (_, body) in zip(self.ports, answers, strict=True)},
            "readyz_200_after_s": ready_after_s,
            "consumer_alive": self.consumer.alive(),
            "consumer": self.consumer.process.name if self.consumer.process else None,
            "consumer_lag": lag,
            "lag_zero": lag_zero(lag),
            "lag_checked_after_s": round(time.monotonic() - started, 2),
        }

    def logs_keep(self) -> Path:
        """Copy the service processes' logs next to the figures, for whoever reads them."""
        target = ARTIFACTS / f"{self.seed}-logs"
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir(parents=True)
        for log in self.log_dir.glob("*.log"):
            shutil.copy(log, target / log.name)
        for server in (self.kafka, self.redis):
            if server.log_file.exists():
                shutil.copy(server.log_file, target / server.log_file.name)
        return target



def _step_text(step: Step) -> str:
    text = {
        "kafka": f"Kafka stopped for {step.down_s}s",
        "redis": f"Redis stopped for {step.down_s}s (back empty)",
        "consumer": f"consume_events SIGKILLed, new one after {step.down_s}s",
        "daphne": f"Daphne {step.target} SIGKILLed, new one on its port after {step.down_s}s",
        "record": f"hostile record {step.target} into partition {step.partition}",
        "layer": f"foreign layer message {step.target}",
    }[step.action]
    return text + (" (overlapping)" if step.overlap else "")
