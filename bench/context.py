"""What every mode shares: the stack, the load clients, the producer, and one measured window.

A window produces `rate` events/s for `seconds` through a design's own path (Kafka for the
service and the per-connection-group design, the in-process publisher for the baseline),
waits up to `drain` seconds for the last deliveries, and measures latency, delivery, server
CPU (over the producing part) and RSS (sampled through the whole window). With `owners`, each
event is meant for one client only (the filtered mode): `count` deliveries are expected, not
`count * clients`, and one that reached another client is counted in `wrong_client`.
"""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.clients import ClientPool
from bench.layer_probe import LayerBacklogProbe
from bench.procstat import CpuMeter, load_average, rss_kb
from bench.producer import KafkaTicker, inproc_run
from bench.stack import BenchStack
from bench.stats import latency_summary, mib
from bench.waits import task_stop

PATHS = {"service": "/crm-events", "inproc": "/bench/inproc", "groups": "/bench/groups"}
STREAM_COUNTERS = {"service": "hub_streams", "inproc": "inproc_streams", "groups": "groups_streams"}
RSS_SAMPLE_SECONDS = 0.5
PROGRESS_POLL_SECONDS = 0.25


@dataclass
class Bench:
    stack: BenchStack
    pool: ClientPool
    ticker: KafkaTicker
    pad: int
    frame_bytes: int
    profile_dir: Path | None = None
    progress: bool = False
    settle: float = 2.0  # seconds the server is left alone before idle memory and churn counts
    _runs: int = field(default=0)

    def say(self, message: str) -> None:
        """A timed progress line (with --progress): where a run that got stuck stopped."""
        if self.progress:
            print(f"{time.strftime('%X')}   {message}", flush=True)

    def run_id(self) -> str:
        self._runs += 1
        return f"r{self._runs}"

    @property
    def daphne_pid(self) -> int:
        return self.stack.daphne.process.pid

    def server_rss_kb(self) -> int:
        return rss_kb(self.daphne_pid)

    def cpu_meter(self) -> CpuMeter:
        return CpuMeter({**self.stack.pids, **self.pool.pids, "bench": os.getpid()})

    async def server_stats(self) -> dict[str, Any]:
        status, body = await self.stack.get("/bench/stats")
        if status != 200:
            raise RuntimeError(f"Daphne answered /bench/stats with {status}: {body!r:.300}")
        return body

    async def streams_per_process(self, design: str) -> list[int]:
        """The streams of `design` each running web process holds (one, except in the nginx mode)."""
        counts = []
        for port in self.stack.web_ports:
            status, body = await self.stack.get("/bench/stats", port)
            if status != 200:
                raise RuntimeError(f"Daphne on {port} answered /bench/stats with {status}: {body!r:.300}")
            counts.append(body[STREAM_COUNTERS[design]])
        return counts

    async def streams(self, design: str) -> int:
        return sum(await self.streams_per_process(design))

    async def streams_wait(self, design: str, count: int, timeout: float) -> int:
        """Wait until the server holds `count` streams of `design`; return what it holds.

        Not reaching it is no error here (the modes report the count), but it is said.
        -1: the server never answered.
        """
        deadline = time.monotonic() + timeout
        held = -1
        while time.monotonic() < deadline:
            try:
                held = await self.streams(design)
            except (TimeoutError, OSError):
                pass  # busy past its ceiling; ask again until our own deadline
            else:
                if held == count:
                    return held
            await asyncio.sleep(0.2)
        print(f"{time.strftime('%X')} warning: the server holds {held} {design} streams, not {count}, "
              f"after {timeout:g} s", flush=True)
        return held

    async def _window_stats(self) -> dict[str, Any] | None:
        try:
            return await self.server_stats()
        except (TimeoutError, OSError):
            return None  # an overloaded server may not answer in time; the window still counts

    async def produce(
        self, design: str, *, run: str, rate: float, count: int, stop: asyncio.Event | None = None,
        owners: int = 0,
    ) -> dict[str, Any]:
        """Produce `count` events at `rate`/s; through Kafka, `stop` ends it early, and `owners`
        spreads them over that many clients (bench/producer.py)."""
        if design == "inproc":
            assert not owners, "the in-process baseline has no per-client events"
            return await inproc_run(self.stack, run=run, rate=rate, count=count, pad=self.pad)
        return await self.ticker.run(
            topic=self.stack.topic, run=run, rate=rate, count=count, pad=self.pad, stop=stop, owners=owners)

    async def window(
        self, design: str, *, clients: int, rate: float, seconds: float, drain: float,
        profile: str | None = None, owners: int = 0, path: str | None = None,
    ) -> dict[str, Any]:
        run, count = self.run_id(), max(1, round(rate * seconds))
        # With owners, each event is meant for the clients of its owner alone (clients / owners of them).
        expected = count * max(1, clients // owners) if owners else count * clients
        self.say(f"{run}: {design}, {clients} clients, {count} events at {rate:g}/s: producing")
        sampler = RssSampler(self.daphne_pid)
        backlog = LayerBacklogProbe(self.stack.redis_url, self.stack.env["REDIS_PREFIX"])
        sampling: dict[str, tuple[RssSampler | LayerBacklogProbe, asyncio.Task[Any]]] = {
            "the RSS sampler": (sampler, asyncio.create_task(sampler.run())),
            "the layer backlog probe": (backlog, asyncio.create_task(backlog.run()))}
        try:
            cpu = self.cpu_meter()
            started = time.monotonic()
            cpu.start(started)
            load_before = load_average()
            stats_before = await self._window_stats()
            if profile:
                await self.stack.get("/bench/profile?action=start")
            produced = await self.produce(design, run=run, rate=rate, count=count, owners=owners)
            produced_at = time.monotonic()
            cpu_percent = cpu.percent(produced_at)
            if profile:
                assert self.profile_dir is not None  # set with --profile
                self.profile_dir.joinpath(f"profile-{profile}.txt").write_text(
                    (await self.stack.get("/bench/profile?action=stop"))[1].decode())
            self.say(f"{run}: produced; waiting for {expected} deliveries (at most {drain:g} s)")
            delivered = await self._drain(run, expected, drain)
            drain_seconds = time.monotonic() - produced_at
            self.say(f"{run}: {delivered}/{expected} delivered; stopping the samplers")
        finally:  # also when the window fails: a step past the ceiling must not leave them running
            for what, (probe, task) in sampling.items():
                probe.stop()
                await task_stop(task, what)
        stats = await self.pool.stats(run)
        latency = latency_summary(stats["latencies_us"])
        stats_after = await self._window_stats()
        self.say(f"{run}: done")
        server_gc = server_rounds = None
        if stats_before is not None and stats_after is not None:
            server_gc = _gc_window(stats_before["gc"], stats_after["gc"])
            server_rounds = write_rounds_window(stats_before["write_rounds"], stats_after["write_rounds"])
        busy_seconds = produced_at - started + drain_seconds
        return {
            "design": design, "path": path or PATHS[design], "clients": clients, "rate": rate,
            "seconds": seconds, "events": count, "expected": expected, "delivered": stats["delivered"],
            "lost": expected - stats["delivered"], "duplicates": stats["duplicates"],
            "wrong_client": stats["wrong_client"], "owners": owners,
            "producing_seconds": round(produced_at - started, 2),
            "delivered_fraction": round(stats["delivered"] / expected, 4) if expected else 0.0,
            "drain_seconds": round(drain_seconds, 2),
            "delivered_per_s": round(stats["delivered"] / busy_seconds),
            "on_time_per_s": round(latency["on_time_250ms"] / busy_seconds),
            "latency": latency, "cpu_percent": cpu_percent, "producer": produced,
            "server_rss_mib": {"peak": mib(sampler.peak)}, "ended_by_server": stats["ended"],
            "loadavg": {"before": load_before, "after": load_average()},
            "progress_at_drain_end": delivered,
            "layer_backlog": {"peak": backlog.peak, "at_end": backlog.last, "missed_samples": backlog.missed},
            "server_gc": server_gc, "server_write_rounds": server_rounds,
        }

    async def _drain(self, run: str, expected: int, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while (delivered := await self.pool.progress(run)) < expected and time.monotonic() < deadline:
            await asyncio.sleep(PROGRESS_POLL_SECONDS)
        return delivered


def _gc_window(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """The server's full (generation 2) collections during a window, and the longest pause so far."""
    return {
        "gen2_collections": after["collections"][2] - before["collections"][2],
        "gen2_ms": round(after["total_ms"][2] - before["total_ms"][2], 1),
        "gen2_longest_ms_so_far": after["longest_ms"][2],
    }


def write_rounds_window(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """The hub's rounds of writes during a window: how many, their mean, and the bucket bound
    under which 99 % of them finished (an event's last client is written at most a round after
    its first)."""
    rounds = after["count"] - before["count"]
    if rounds <= 0:
        return {"rounds": 0}
    p99_bound = next((bound for bound, cumulative in after["buckets"].items()
                      if cumulative - before["buckets"].get(bound, 0.0) >= 0.99 * rounds), "+Inf")
    return {"rounds": int(rounds), "mean_ms": round((after["sum_s"] - before["sum_s"]) / rounds * 1000, 1),
            "p99_at_most_s": p99_bound}


class RssSampler:
    """Samples a process's RSS until `stop()`; keeps the peak and the series (seconds, KiB)."""

    def __init__(self, pid: int, every: float = RSS_SAMPLE_SECONDS) -> None:
        self.pid = pid
        self.every = every
        self.peak = 0
        self.series: list[tuple[float, int]] = []
        self.stopping = False

    def stop(self) -> None:
        self.stopping = True

    async def run(self) -> None:
        started = time.monotonic()
        while not self.stopping:
            value = rss_kb(self.pid)
            self.peak = max(self.peak, value)
            self.series.append((round(time.monotonic() - started, 1), value))
            await asyncio.sleep(self.every)
