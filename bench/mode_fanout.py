"""Fan-out at a fixed load (N clients x R events/s), and the step mode that finds the ceiling.

Fixed load: open N clients on a design's path, measure the server's RSS before and once
they are idle (KB per connection), then one measured window, then close them.
Step: N clients stay open while the rate steps up; a step passes when every event
reached every client exactly once and p99 <= 250 ms. The result is the highest passing
rate, in events/s and deliveries/s.
"""

from __future__ import annotations

import asyncio
from typing import Any

from bench.context import PATHS, Bench
from bench.stats import ON_TIME_MS, mib

STREAMS_TIMEOUT = 30.0


async def clients_open(bench: Bench, design: str, clients: int) -> dict[str, Any]:
    bench.say(f"opening {clients} {design} streams")
    opened = await bench.pool.open(PATHS[design], clients, concurrency=32)
    held = await bench.streams_wait(design, opened["opened"], STREAMS_TIMEOUT)
    per_process = await bench.streams_per_process(design)
    bench.say(f"opened {opened['opened']} {design} streams (errors: {opened['errors'] or 'none'}); "
              f"the server holds {held} {per_process}")
    return {**opened, "server_streams": held, "server_streams_per_process": per_process}


async def clients_close(bench: Bench, design: str) -> int:
    bench.say(f"closing the {design} streams")
    await bench.pool.close()
    left = await bench.streams_wait(design, 0, STREAMS_TIMEOUT)
    bench.say(f"closed; the server holds {left} {design} streams")
    return left


async def fanout_mode(
    bench: Bench, design: str, *, clients: int, rate: float, seconds: float, drain: float,
    profile: str | None = None,
) -> dict[str, Any]:
    rss_before = bench.server_rss_kb()
    before = await bench.server_stats()
    opening = await clients_open(bench, design, clients)
    await asyncio.sleep(bench.settle)
    rss_idle = bench.server_rss_kb()
    idle = await bench.server_stats()
    try:
        result = await bench.window(
            design, clients=opening["opened"], rate=rate, seconds=seconds, drain=drain, profile=profile)
    finally:
        left = await clients_close(bench, design)
    result["open"] = opening
    result["server_rss_mib"].update(
        before_open=mib(rss_before), idle=mib(rss_idle), after_close=mib(bench.server_rss_kb()))
    result["kb_per_idle_connection"] = round((rss_idle - rss_before) / max(opening["opened"], 1), 1)
    result["streams_left_after_close"] = left
    # What each open stream holds besides memory: OS threads and asyncio tasks.
    result["server_threads"] = {"before_open": before["threads"], "idle": idle["threads"]}
    result["server_tasks"] = {"before_open": before["tasks"], "idle": idle["tasks"]}
    return result


def step_lossless(window: dict[str, Any]) -> bool:
    """Every event reached every client once (within the drain time), nobody sent away."""
    return (
        window["delivered"] == window["expected"]
        and window["duplicates"] == 0
        and not window["ended_by_server"]
    )


def step_passed(window: dict[str, Any]) -> bool:
    return step_lossless(window) and window["latency"]["p99_ms"] <= ON_TIME_MS


async def step_mode(
    bench: Bench, design: str, *, clients: int, rates: list[float], seconds: float, drain: float,
    patience: int,
) -> dict[str, Any]:
    opening = await clients_open(bench, design, clients)
    steps: list[dict[str, Any]] = []
    failures = 0
    try:
        for index, rate in enumerate(rates):
            try:
                window = await bench.window(
                    design, clients=opening["opened"], rate=rate, seconds=seconds, drain=drain)
            except (TimeoutError, OSError) as error:
                # The server no longer answers the benchmark's own requests: past its ceiling.
                steps.append({"rate": rate, "passed": False, "lossless": False, "error": repr(error)})
                break
            window["passed"] = step_passed(window)
            window["lossless"] = step_lossless(window)
            steps.append(window)
            # A p99 miss alone does not stop the ladder (one long GC pause in a step does that);
            # steps that lose events do.
            failures = 0 if window["lossless"] else failures + 1
            if failures >= patience or window["ended_by_server"] or index == len(rates) - 1:
                break
            await asyncio.sleep(1.0)  # let queues and the layer settle between steps
    finally:
        await clients_close(bench, design)
    best = max((step for step in steps if step["passed"]), key=lambda s: s["rate"], default=None)
    lossless = max((step for step in steps if step["lossless"]), key=lambda s: s["rate"], default=None)
    return {
        "design": design, "clients": opening["opened"], "open": opening, "step_seconds": seconds,
        "best_rate": best["rate"] if best else 0.0,
        "best_deliveries_per_s": best["delivered_per_s"] if best else 0,
        "best_rate_lossless": lossless["rate"] if lossless else 0.0,
        "steps": [_step_row(step) if "error" not in step else step for step in steps],
    }


def _step_row(window: dict[str, Any]) -> dict[str, Any]:
    return {
        "rate": window["rate"], "passed": window["passed"], "lossless": window["lossless"],
        "expected": window["expected"],
        "delivered": window["delivered"], "duplicates": window["duplicates"],
        "p50_ms": window["latency"]["p50_ms"], "p99_ms": window["latency"]["p99_ms"],
        "max_ms": window["latency"]["max_ms"], "delivered_per_s": window["delivered_per_s"],
        "cpu_percent": window["cpu_percent"], "ended_by_server": window["ended_by_server"],
        "loadavg": window["loadavg"], "server_gc": window.get("server_gc"),
    }
