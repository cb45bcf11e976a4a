"""Where the bytes of an idle stream go: tracemalloc in the web process over N idle streams.

The web process traces its Python allocations from just before the streams open until they
are idle (bench/asgi_modes.py, /bench/tracemalloc); the growth between the two snapshots,
divided by N, is what one idle stream holds, by file, by line and by traceback. Tracing costs
memory of its own, so the RSS figures of this mode are not the benchmark's KB per idle
connection (the kafka mode's, measured without tracing): only the traced bytes are.
"""

from __future__ import annotations

import asyncio
from typing import Any

from bench.context import Bench
from bench.mode_fanout import clients_close, clients_open

# What an idle stream should no longer hold; the census shows who holds one, if any survives.
HOLDERS = "ASGIRequest,StreamingHttpResponse,SpooledTemporaryFile,ResolverMatch"
REPORT_TIMEOUT = 300.0  # comparing two snapshots of a process with thousands of streams takes a while


async def memory_mode(bench: Bench, *, clients: int) -> dict[str, Any]:
    await bench.stack.get("/bench/objects?action=start")
    status, started = await bench.stack.get("/bench/tracemalloc?action=start")
    if status != 200 or not started.get("started"):
        raise RuntimeError(f"Daphne answered /bench/tracemalloc?action=start with {status}: {started!r:.300}")
    rss_before = bench.server_rss_kb()
    opening = await clients_open(bench, "service", clients)
    await asyncio.sleep(bench.settle)
    rss_idle = bench.server_rss_kb()
    opened = max(opening["opened"], 1)
    try:
        status, traced = await bench.stack.get(f"/bench/tracemalloc?action=stop&per={opened}",
                                               timeout=REPORT_TIMEOUT)
        if status != 200:
            raise RuntimeError(f"Daphne answered /bench/tracemalloc?action=stop with {status}: "
                               f"{traced!r:.300}")
        _, census = await bench.stack.get(f"/bench/objects?action=stop&per={opened}&holders={HOLDERS}",
                                          timeout=REPORT_TIMEOUT)
    finally:
        left = await clients_close(bench, "service")
    return {
        "clients": opening["opened"], "open": opening, "streams_left_after_close": left,
        "traced_kb_per_idle_connection": round(traced["total_bytes_per"] / 1024, 1),
        "rss_kb_per_idle_connection_while_tracing": round((rss_idle - rss_before) / opened, 1),
        "tracemalloc": traced, "objects": census,
    }


def memory_summary(memory: dict[str, Any], top: int = 12) -> str:
    """The traced bytes per idle stream, and the lines that hold most of them."""
    traced = memory["tracemalloc"]
    lines = [f"memory: {memory['clients']} idle streams, {memory['traced_kb_per_idle_connection']} KB traced "
             f"per stream (RSS while tracing {memory['rss_kb_per_idle_connection_while_tracing']} KB); "
             "top lines, bytes per stream:"]
    for row in traced["by_lineno"][:top]:
        lines.append(f"  {row['bytes_per']:>8.0f} B {row['blocks_per']:>6.2f} blocks  {_short(row['where'])}")
    census = memory.get("objects", {})
    lines.append(f"objects per stream: {census.get('objects_per')}; by type:")
    lines += [f"  {row['per']:>6.2f}  {row['type']}" for row in census.get("by_type", [])[:top]]
    for name, chain in census.get("holders", {}).items():
        lines.append(f"  {name} still held: " + (" <- ".join(chain) if chain else "no"))
    return "\n".join(lines)


def _short(where: str) -> str:
    for marker in ("site-packages/", "wt-fanout14/", "/lib/python3"):
        if marker in where:
            return where.split(marker, 1)[1]
    return where
