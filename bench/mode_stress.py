"""Slow clients and connection churn against the service's `/crm-events`.

Slow: K clients read the response head and the `connected` frame, then never read again
(with a small receive buffer, so the kernel does not hide the stall for long), while a few
normal readers measure that everyone else is still served. Events flow at `rate`/s; the
server's RSS is sampled every second. At the end the stalled clients start reading, to
see whether the server ended their streams with a `reconnect` frame (reason `slow`).

Churn: `cycles` connect / wait for `connected` / disconnect (alternately FIN and RST), with
events flowing, then the hub's stream count (leaked subscribers), RSS, open files and asyncio
tasks are compared with their values after a warm-up.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from bench.context import PATHS, Bench, RssSampler
from bench.mode_fanout import clients_close, clients_open
from bench.procstat import kernel_send_queue_bytes, load_average
from bench.stats import mib
from bench.waits import task_stop

CHURN_WARMUP_CYCLES = 200
STREAMS_TIMEOUT = 30.0


async def slow_mode(
    bench: Bench, *, stalled: int, readers: int, rate: float, seconds: float, rcvbuf: int,
    drain: float = 5.0, read_seconds: float = 5.0,
) -> dict[str, Any]:
    """`drain`: how long the readers' window waits for late deliveries; `read_seconds`: how long
    the stalled clients then read, to see whether the server sent them away."""
    rss_before = bench.server_rss_kb()
    opening = await clients_open(bench, "service", readers)
    stall_open = await bench.pool.open(PATHS["service"], stalled, stall=True, rcvbuf=rcvbuf, concurrency=32)
    held = await bench.streams_wait("service", opening["opened"] + stall_open["opened"], STREAMS_TIMEOUT)
    rss_connected = bench.server_rss_kb()
    sampler = RssSampler(bench.daphne_pid, every=1.0)
    sampling = asyncio.create_task(sampler.run())
    try:
        window = await bench.window(
            "service", clients=opening["opened"], rate=rate, seconds=seconds, drain=drain)
    finally:
        sampler.stop()
        await task_stop(sampling, "the RSS sampler of the slow mode")
    streams_end = await bench.streams("service")
    rss_end = bench.server_rss_kb()
    kernel_queued = kernel_send_queue_bytes(bench.stack.port)
    drained = await bench.pool.drain_stalled(timeout=read_seconds)
    await clients_close(bench, "service")
    return {
        "stalled": stall_open["opened"], "readers": opening["opened"], "rate": rate, "seconds": seconds,
        "client_rcvbuf": rcvbuf, "server_streams_connected": held, "server_streams_at_end": streams_end,
        "rss_mib": {
            "before_connect": mib(rss_before), "connected": mib(rss_connected),
            "peak": mib(sampler.peak), "end": mib(rss_end), "after_close": mib(bench.server_rss_kb()),
        },
        "rss_growth_mib": mib(sampler.peak - rss_connected),
        "kernel_send_queue_mib_at_end": None if kernel_queued is None else mib(kernel_queued / 1024),
        "rss_series_mib": [(at, mib(kb)) for at, kb in sampler.series],
        "stalled_endings": drained,
        "readers_window": {key: window[key] for key in (
            "expected", "delivered", "lost", "duplicates", "latency", "cpu_percent", "loadavg")},
    }


async def churn_mode(bench: Bench, *, cycles: int, concurrency: int, rate: float) -> dict[str, Any]:
    path = PATHS["service"]
    await bench.pool.churn(path, min(CHURN_WARMUP_CYCLES, max(cycles // 10, 10)), concurrency)
    await bench.streams_wait("service", 0, STREAMS_TIMEOUT)
    await asyncio.sleep(bench.settle)
    before = await bench.server_stats()
    load_before = load_average()
    stop = asyncio.Event()
    producing = asyncio.create_task(bench.produce(
        "service", run=bench.run_id(), rate=rate, count=1_000_000, stop=stop))
    started = time.monotonic()
    try:
        churned = await bench.pool.churn(path, cycles, concurrency)
    finally:
        stop.set()  # ends the ticker's loop even if a cancellation is swallowed (bench/waits.py)
        await task_stop(producing, "the Kafka producer of the churn mode")
    seconds = time.monotonic() - started
    streams_left = await bench.streams_wait("service", 0, STREAMS_TIMEOUT)
    await asyncio.sleep(bench.settle)
    after = await bench.server_stats()
    status, ready = await bench.stack.get("/readyz")
    return {
        "cycles": cycles, "concurrency": concurrency, "events_per_s_during": rate,
        "churn": churned, "cycles_per_s": round(cycles / seconds, 1),
        "leaked_subscribers": after["hub_streams"], "streams_left_after_wait": streams_left,
        "readyz_streams": ready.get("streams") if isinstance(ready, dict) else None,
        "readyz_status": status,
        "rss_growth_mib": mib(after["rss_kb"] - before["rss_kb"]),
        "before": before, "after": after, "loadavg": {"before": load_before, "after": load_average()},
    }
