"""The ingest path alone: what `consume_events` costs per event, and how fast it takes a backlog.

idle    no events for a few seconds: the consumer's CPU in percent of a core (heartbeats, polls).
steady  R events/s (the bench's ~300-byte records) for S seconds to one client on `/crm-events`:
        the consumer's CPU (user + system, every thread) over the window, from before the first
        event until the client has them all, divided by the events: µs per event. Its idle
        cost (heartbeats, status line) is in it, as it is in production.
intake  the consumer is paused (SIGSTOP), B events are produced as fast as the producer can,
        and it is resumed (SIGCONT): the time from resuming until it has published them all (its
        own /metrics counts a record once the layer accepted it, read every 50 ms) gives its
        intake in events/s; its CPU over that time, µs per event. The one client then
        has to receive every event exactly once (lossless), within the drain. The pause is kept
        well under the group's session timeout, so no rebalance is counted in.

With `profile` (the bench's --profile), py-spy samples the consumer over the steady window and
its folded stacks go to `profile-ingest.txt` in the run's folder (py-spy is in the test extra).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import sys
import time
from pathlib import Path
from typing import Any

from bench.context import Bench
from bench.mode_fanout import clients_close, clients_open
from bench.procstat import cpu_seconds, load_average
from bench.waits import bounded
from scripts.processes import http_get

PUBLISHED_POLL_SECONDS = 0.05
HTTP_TIMEOUT = 10.0
KAFKA_TIMEOUT = 30.0  # py-spy writing its profile
EVENTS_CONSUMED = "aetherlink_events_consumed_total"
# The producer sends without pause: far above any intake we measure.
BURST_RATE = 1_000_000.0


class PublishedWatch:
    """Reads how many records the consumer has published (its own /metrics, a counter it adds
    to once the layer accepted them)."""

    def __init__(self, bench: Bench) -> None:
        self.port = bench.stack.consumer_metrics_port
        self.counter = f'{EVENTS_CONSUMED}{{topic="{bench.stack.topic}"}}'

    async def published(self) -> int:
        status, body = await bounded(asyncio.to_thread(http_get, self.port, "/metrics"), HTTP_TIMEOUT,
                                     f"the consumer's /metrics on port {self.port}")
        if status != 200:
            raise RuntimeError(f"the consumer's /metrics answered {status}")
        text = body.decode() if isinstance(body, bytes) else str(body)
        for line in text.splitlines():
            if line.startswith(self.counter):
                return round(float(line.rsplit(" ", 1)[1]))
        return 0

    async def wait(self, count: int, timeout: float) -> float | None:
        """Seconds until the consumer has published `count` records in all; None if not within
        `timeout`. Each read costs the consumer a little CPU, counted in its figures."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            if await self.published() >= count:
                return time.monotonic() - started
            await asyncio.sleep(PUBLISHED_POLL_SECONDS)
        return None


IDLE_SECONDS = 3.0


async def _idle_percent(consumer: int) -> float:
    before, started = cpu_seconds(consumer), time.monotonic()
    await asyncio.sleep(IDLE_SECONDS)
    return round(100 * (cpu_seconds(consumer) - before) / (time.monotonic() - started), 1)


def _per_event_us(cpu: float, events: int) -> float:
    return round(1e6 * cpu / max(events, 1), 1)


def _py_spy() -> str:
    """py-spy beside this interpreter (the venv), else on PATH."""
    beside = Path(sys.executable).with_name("py-spy")
    found = str(beside) if beside.exists() else shutil.which("py-spy")
    if found is None:
        raise RuntimeError("--profile needs py-spy: pip install -e '.[test]' -c constraints.txt")
    return found


async def _profiler_start(pid: int, output: Path) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        _py_spy(), "record", "--pid", str(pid), "--format", "raw", "--rate", "250", "--output", str(output),
        "--nonblocking", stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)


async def _profiler_stop(profiler: asyncio.subprocess.Process) -> None:
    profiler.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
    try:
        await bounded(profiler.wait(), KAFKA_TIMEOUT, "py-spy (writing its profile)")
    except TimeoutError:
        profiler.kill()
        await profiler.wait()


async def _steady(
    bench: Bench, consumer: int, *, rate: float, seconds: float, drain: float, profile: Path | None,
) -> dict[str, Any]:
    profiler = await _profiler_start(consumer, profile) if profile is not None else None
    before = cpu_seconds(consumer)
    try:
        window = await bench.window("service", clients=1, rate=rate, seconds=seconds, drain=drain)
    finally:
        cpu = cpu_seconds(consumer) - before
        if profiler is not None:
            await _profiler_stop(profiler)
    return {
        "rate": rate, "seconds": seconds, "events": window["events"], "delivered": window["delivered"],
        "lost": window["lost"], "duplicates": window["duplicates"], "consumer_cpu_s": round(cpu, 2),
        "consumer_us_per_event": _per_event_us(cpu, window["events"]),
        "consumer_cpu_percent": window["cpu_percent"].get("consumer"), "latency": window["latency"],
        "loadavg": window["loadavg"],
    }


async def _intake(
    bench: Bench, consumer: int, watch: PublishedWatch, *, backlog: int, drain: float,
) -> dict[str, Any]:
    run = bench.run_id()
    load_before = load_average()
    published = await watch.published()
    os.kill(consumer, signal.SIGSTOP)
    try:
        produced = await bench.produce("service", run=run, rate=BURST_RATE, count=backlog)
    finally:
        os.kill(consumer, signal.SIGCONT)
    cpu_before = cpu_seconds(consumer)
    took = await watch.wait(published + backlog, drain)
    cpu = cpu_seconds(consumer) - cpu_before
    deadline = time.monotonic() + drain
    while (delivered := await bench.pool.progress(run)) < backlog and time.monotonic() < deadline:
        await asyncio.sleep(0.25)
    stats = await bench.pool.stats(run)
    return {
        "backlog": backlog, "producer": produced,
        "published_seconds": None if took is None else round(took, 3),
        "intake_per_s": None if not took else round(backlog / took),
        "consumer_cpu_s": round(cpu, 2), "consumer_us_per_event": _per_event_us(cpu, backlog),
        "delivered": stats["delivered"], "lost": backlog - stats["delivered"],
        "duplicates": stats["duplicates"],
        "progress_at_drain_end": delivered,
        "lossless": took is not None and stats["delivered"] == backlog and stats["duplicates"] == 0,
        "loadavg": {"before": load_before, "after": load_average()},
    }


async def ingest_mode(
    bench: Bench, *, rate: float, seconds: float, backlog: int, drain: float, profile: bool = False,
) -> dict[str, Any]:
    assert bench.stack.consumer is not None  # started with the stack
    consumer = bench.stack.consumer.process.pid
    watch = PublishedWatch(bench)
    await clients_open(bench, "service", 1)
    try:
        idle = await _idle_percent(consumer)
        output = bench.profile_dir / "profile-ingest.txt" if profile and bench.profile_dir else None
        steady = await _steady(bench, consumer, rate=rate, seconds=seconds, drain=drain, profile=output)
        intake = await _intake(bench, consumer, watch, backlog=backlog, drain=drain)
    finally:
        await clients_close(bench, "service")
    return {"idle_cpu_percent": idle, "steady": steady, "intake": intake}


def ingest_summary(result: dict[str, Any]) -> str:
    steady, intake = result["steady"], result["intake"]
    return (
        f"ingest: idle {result['idle_cpu_percent']} % of a core; steady {steady['rate']:g} ev/s: "
        f"consumer {steady['consumer_us_per_event']} µs/event "
        f"({steady['delivered']}/{steady['events']} delivered); intake of {intake['backlog']} events: "
        f"{intake['intake_per_s']} ev/s published, {intake['consumer_us_per_event']} µs/event, "
        f"{'lossless' if intake['lossless'] else 'NOT lossless'} "
        f"({intake['delivered']}/{intake['backlog']} delivered, {intake['duplicates']} duplicates)"
    )
