"""The peer mode: AetherLink and Centrifugo side by side, interleaved, on the same Kafka, producer
and load client (docs/benchmarks.md "Peers"; not run unless named in --modes).

AetherLink runs as `aetherlink-web --workers W` (bench/web.py, the supervisor and its W workers on
one port) fed by the stack's `consume_events`; Centrifugo (bench/peer_centrifugo.py) runs its own
Kafka consumer on a topic of its own, so neither server does the other's work during a window.
Every record carries Centrifugo's channel header, in both topics, so both get the same records.
For each workload (N clients x R ev/s) and each repeat, one window per server, AetherLink first:
open N clients, let the server settle, read its RSS (KB per idle connection: the growth over the
RSS before the clients, divided by N), produce R ev/s for the window, wait for the deliveries,
read the CPU time its processes took (ours: the workers and the consumer; Centrifugo: its one
process) per delivery, then close the clients. The load average is read beside each window.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.context import Bench
from bench.mode_fanout import step_lossless, step_passed
from bench.peer_centrifugo import RECORD_HEADERS, Centrifugo
from bench.procstat import cpu_seconds, load_average, process_tree, rss_kb
from bench.stats import latency_summary
from bench.waits import bounded
from scripts.topics import topic_create

SERVERS = ("aetherlink", "centrifugo")
PROGRESS_POLL_SECONDS = 0.25
TOPIC_TIMEOUT = 60.0
OPEN_CONCURRENCY = 32


@dataclass
class PeerServer:
    """One side of the comparison: where its clients connect, what it consumes, what it runs as."""

    name: str
    port: int
    path: str
    topic: str
    roots: list[int]  # processes whose trees hold connections (RSS and CPU)
    extra: list[int] = field(default_factory=list)  # processes counted for CPU only (our consumer)

    def pids(self) -> list[int]:
        return [pid for root in self.roots for pid in process_tree(root)]

    def rss_kb(self) -> int:
        return sum(rss_kb(pid) for pid in self.pids())

    def cpu_seconds(self) -> float:
        return sum(cpu_seconds(pid) for pid in self.pids() + self.extra)


async def aetherlink_start(bench: Bench, workers: int) -> PeerServer:
    """`aetherlink-web --workers N` (bench/web.py) on a port of its own, ready once /status is 200."""
    stack = bench.stack
    process, port = await stack.web_workers_start(workers)
    assert stack.consumer is not None  # started with the stack
    return PeerServer("aetherlink", port, "/crm-events", stack.topic, [process.process.pid],
                      [stack.consumer.process.pid])


async def centrifugo_start(bench: Bench, binary: Path) -> PeerServer:
    stack = bench.stack
    topic = f"{stack.topic}-peer"
    await bounded(topic_create(stack.kafka_bootstrap, topic, 3), TOPIC_TIMEOUT,
                  f"Kafka at {stack.kafka_bootstrap} (creating topic {topic})")
    peer = Centrifugo(binary, stack.run_dir / "centrifugo", stack.env, brokers=stack.kafka_bootstrap,
                      topic=topic, group=f"{topic}-centrifugo")
    process = await asyncio.to_thread(peer.start)
    stack.process_adopt(process)
    return PeerServer("centrifugo", peer.port, peer.path, topic, [process.process.pid])


async def peer_window(bench: Bench, server: PeerServer, *, clients: int, rate: float, seconds: float,
                      drain: float) -> dict[str, Any]:
    """Open `clients`, read the idle RSS, one measured window, close them."""
    rss_before = server.rss_kb()
    with bench.pool.target(server.port):
        opening = await bench.pool.open(server.path, clients, concurrency=OPEN_CONCURRENCY)
    try:
        await asyncio.sleep(bench.settle)
        rss_idle = server.rss_kb()
        window = await _measure(bench, server, clients=opening["opened"], rate=rate, seconds=seconds,
                                drain=drain)
    finally:
        await bench.pool.close()
    window["open_errors"] = opening["errors"]
    window["kb_per_idle_connection"] = round((rss_idle - rss_before) / max(opening["opened"], 1), 1)
    window["rss_mib"] = {"before_open": round(rss_before / 1024, 1), "idle": round(rss_idle / 1024, 1)}
    return window


async def _measure(bench: Bench, server: PeerServer, *, clients: int, rate: float, seconds: float,
                   drain: float) -> dict[str, Any]:
    """`rate` ev/s for `seconds` to the open clients: deliveries, latency, CPU per delivery."""
    run, count = bench.run_id(), max(1, round(rate * seconds))
    expected = count * clients
    load_before = load_average()
    cpu_before, started = server.cpu_seconds(), time.monotonic()
    produced = await bench.ticker.run(topic=server.topic, run=run, rate=rate, count=count, pad=bench.pad,
                                      headers=RECORD_HEADERS)
    delivered = await _drain(bench, run, expected, drain)
    cpu = server.cpu_seconds() - cpu_before
    wall = time.monotonic() - started
    stats = await bench.pool.stats(run)
    latency = latency_summary(stats["latencies_us"])
    return {
        "server": server.name, "clients": clients, "rate": rate,
        "events": count, "expected": expected, "delivered": stats["delivered"],
        "lost": expected - stats["delivered"], "duplicates": stats["duplicates"],
        "progress_at_drain_end": delivered, "latency": latency, "producer": produced,
        "cpu_percent": round(100 * cpu / wall, 1),
        "cpu_us_per_delivery": round(cpu * 1e6 / stats["delivered"], 1) if stats["delivered"] else None,
        "processes": len(server.pids()), "ended_by_server": stats["ended"],
        "loadavg": {"before": load_before, "after": load_average()},
    }


async def peer_step(bench: Bench, server: PeerServer, *, clients: int, rates: list[float], seconds: float,
                    drain: float) -> dict[str, Any]:
    """The step mode's ladder for one server: the highest rate with every event delivered once to
    every client and p99 <= 250 ms (`best_rate`), and the highest with nothing lost."""
    with bench.pool.target(server.port):
        opening = await bench.pool.open(server.path, clients, concurrency=OPEN_CONCURRENCY)
    steps = []
    try:
        for rate in rates:
            window = await _measure(bench, server, clients=opening["opened"], rate=rate, seconds=seconds,
                                    drain=drain)
            window["lossless"], window["passed"] = step_lossless(window), step_passed(window)
            print(f"{time.strftime('%X')}    step {server.name} {rate:g} ev/s: {window['delivered']}/"
                  f"{window['expected']}, p99 {window['latency']['p99_ms']} ms; load {load_average()}",
                  flush=True)
            steps.append(window)
            if not window["lossless"]:
                break
            await asyncio.sleep(1.0)
    finally:
        await bench.pool.close()
    return {
        "clients": opening["opened"],
        "best_rate": max((w["rate"] for w in steps if w["passed"]), default=0.0),
        "best_rate_lossless": max((w["rate"] for w in steps if w["lossless"]), default=0.0),
        "steps": steps,
    }


async def _drain(bench: Bench, run: str, expected: int, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while (delivered := await bench.pool.progress(run)) < expected and time.monotonic() < deadline:
        await asyncio.sleep(PROGRESS_POLL_SECONDS)
    return delivered


async def peer_mode(bench: Bench, *, binary: Path, workloads: list[tuple[int, float]], repeats: int,
                    seconds: float, drain: float, workers: int, step_clients: int = 0,
                    step_rates: tuple[float, ...] = (), step_seconds: float = 10.0) -> dict[str, Any]:
    """Every workload `repeats` times, AetherLink then Centrifugo each time; medians and ranges."""
    servers = [await aetherlink_start(bench, workers), await centrifugo_start(bench, binary)]
    for server in servers:  # lazy set-up (first connections, first publications) is not measured
        await peer_window(bench, server, clients=2, rate=5, seconds=1, drain=10)
    results: dict[str, Any] = {}
    for clients, rate in workloads:
        name = f"{clients}x{rate:g}"
        runs: dict[str, list[dict[str, Any]]] = {server.name: [] for server in servers}
        for repeat in range(repeats):
            for server in servers:
                print(f"{time.strftime('%X')}    {name} repeat {repeat + 1}/{repeats}: {server.name}; "
                      f"load average {load_average()}", flush=True)
                runs[server.name].append(await peer_window(
                    bench, server, clients=clients, rate=rate, seconds=seconds, drain=drain))
                await asyncio.sleep(1.0)  # let the previous server's last writes settle
        results[name] = {"clients": clients, "rate": rate, "runs": runs,
                         "summary": {server: _summary(windows) for server, windows in runs.items()}}
    steps = {}
    if step_clients and step_rates:  # after the workloads: a ladder ends past a server's ceiling
        for server in servers:
            steps[server.name] = await peer_step(bench, server, clients=step_clients, rates=list(step_rates),
                                                 seconds=step_seconds, drain=drain)
    return {"workers": workers, "repeats": repeats, "seconds": seconds, "drain": drain, "workloads": results,
            "step": steps}


def _spread(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    return {"median": round(statistics.median(values), 1), "min": min(values), "max": max(values)}


def _summary(windows: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "p50_ms": _spread([w["latency"]["p50_ms"] for w in windows]),
        "p99_ms": _spread([w["latency"]["p99_ms"] for w in windows]),
        "cpu_us_per_delivery": _spread([w["cpu_us_per_delivery"] for w in windows
                                        if w["cpu_us_per_delivery"] is not None]),
        "kb_per_idle_connection": _spread([w["kb_per_idle_connection"] for w in windows]),
        "lost": sum(w["lost"] for w in windows), "duplicates": sum(w["duplicates"] for w in windows),
        "expected": sum(w["expected"] for w in windows),
    }


def peer_table(mode: dict[str, Any]) -> str:
    """Medians (ranges) per workload and server, as docs/benchmarks.md shows them."""
    lines = [f"peer mode: aetherlink-web --workers {mode['workers']} vs Centrifugo, {mode['repeats']} "
             "interleaved repeats each",
             "workload | server | delivered/expected | p50 ms | p99 ms | CPU us/delivery | KB/idle conn"]
    for name, workload in mode["workloads"].items():
        for server, summary in workload["summary"].items():
            cells = [_cell(summary[key]) for key in ("p50_ms", "p99_ms", "cpu_us_per_delivery",
                                                      "kb_per_idle_connection")]
            delivered = summary["expected"] - summary["lost"]
            lines.append(f"{name} | {server} | {delivered}/{summary['expected']} | " + " | ".join(cells))
    for server, ladder in mode.get("step", {}).items():
        lines.append(f"step, {ladder['clients']} clients, {server}: best {ladder['best_rate']:g} ev/s "
                     f"(p99 <= 250 ms, nothing lost), lossless up to {ladder['best_rate_lossless']:g} ev/s")
    return "\n".join(lines)


def _cell(spread: dict[str, float] | None) -> str:
    return "-" if spread is None else f"{spread['median']:g} ({spread['min']:g}-{spread['max']:g})"
