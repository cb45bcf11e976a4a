"""Filtered streams: N clients each with a filter of its own, every event meant for one of them.

The same run measures, one window after the other at the same rate R through Kafka:
  unfiltered  B clients (50 by default) on plain `/crm-events`: every event reaches all of them;
  key         N clients on `/crm-events?key=o<n>`: event `seq` has key `o<seq % N>`;
  where       N clients on `/crm-events?where=owner:o<n>`: the same events, matched by their
              `owner` field instead of their key;
  tenant      N clients of T tenants (N / 10 by default) on plain `/crm-events`, each with a JWT
              whose grant is `{"where": ["owner:o<n % T>"]}` (issue 21): event `seq` is tenant
              `o<seq % T>`'s, and reaches its N / T clients by their grants alone. Its run starts
              the web process with SSE_AUTH_MODE=jwt, so every window's clients send a token
              (the others' without a grant);
  tenant_filter  the same audience by a client filter instead, `/crm-events?where=owner:o<n % T>`
              and tokens without a grant: what the grant itself costs, apart from the audience.
A filtered window passes when every event reached exactly its clients: delivered equals the
events produced times the clients each is meant for, no duplicate, no delivery to a client it
was not meant for (the load clients check each event's owner, bench/load_client.py), and p99
<= 250 ms. Daphne's CPU is reported per produced and per delivered event, measured over the
producing part of each window.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import jwt

from bench.context import Bench
from bench.stats import ON_TIME_MS

STREAMS_TIMEOUT = 60.0
VARIANTS = {"key": "/crm-events?key=o{n}", "where": "/crm-events?where=owner:o{n}", "tenant": "/crm-events",
            "tenant_filter": "/crm-events?where=owner:o{t}"}
TENANT_VARIANTS = ("tenant", "tenant_filter")
TOKEN_LIFETIME = 86_400  # seconds: longer than any run, so no stream ends for its token


def tenant_tokens(key: str, tenants: int) -> list[str]:
    """Tenant k's token, for k < tenants: its grant limits it to the events of owner `o<k>`."""
    exp = int(time.time()) + TOKEN_LIFETIME
    return [jwt.encode({"sub": f"tenant-{k}", "exp": exp, "grant": {"where": [f"owner:o{k}"]}}, key, "HS256")
            for k in range(tenants)]


def plain_token(key: str) -> str:
    """A token without a grant: what the other windows' clients send when the run needs tokens."""
    return jwt.encode({"sub": "bench", "exp": int(time.time()) + TOKEN_LIFETIME}, key, "HS256")


async def _window(
    bench: Bench, name: str, path: str, *, clients: int, owners: bool, rate: float, seconds: float,
    drain: float, tenants: int = 0,
) -> dict[str, Any]:
    rss_before = bench.server_rss_kb()
    bench.say(f"{name}: opening {clients} streams on {path}")
    tenancy: dict[str, Any] = {"owners": tenants} if tenants else {}
    if tenants and name == "tenant":
        tenancy["bearer"] = tenant_tokens(bench.stack.jwt_key, tenants)
    opened = await bench.pool.open(path, clients, concurrency=32, **tenancy)
    held = await bench.streams_wait("service", opened["opened"], STREAMS_TIMEOUT)
    bench.say(f"{name}: opened {opened['opened']} (errors: {opened['errors'] or 'none'}); "
              f"the server holds {held}")
    await asyncio.sleep(bench.settle)
    rss_idle = bench.server_rss_kb()
    try:
        window = await bench.window(
            "service", clients=opened["opened"], rate=rate, seconds=seconds, drain=drain,
            owners=tenants or (opened["opened"] if owners else 0), path=path)
    finally:
        await bench.pool.close()
        left = await bench.streams_wait("service", 0, STREAMS_TIMEOUT)
    window.update(variant=name, open=opened, streams_left_after_close=left,
                  kb_per_idle_connection=round((rss_idle - rss_before) / max(opened["opened"], 1), 1))
    daphne_cpu_seconds = window["cpu_percent"]["daphne"] / 100 * window["producing_seconds"]
    window["daphne_cpu_us"] = {
        "per_produced_event": round(1e6 * daphne_cpu_seconds / max(window["events"], 1), 1),
        "per_delivered_event": round(1e6 * daphne_cpu_seconds / max(window["delivered"], 1), 1),
    }
    window["exact"] = (window["delivered"] == window["expected"] and window["duplicates"] == 0
                       and window["wrong_client"] == 0 and not window["ended_by_server"])
    window["passed"] = window["exact"] and window["latency"]["p99_ms"] <= ON_TIME_MS
    return window


async def filtered_mode(
    bench: Bench, *, clients: int, baseline_clients: int, rate: float, seconds: float, drain: float,
    variants: list[str], tenants: int = 0,
) -> dict[str, Any]:
    windows = {"unfiltered": await _window(
        bench, "unfiltered", "/crm-events", clients=baseline_clients, owners=False,
        rate=rate, seconds=seconds, drain=drain)}
    for name in variants:
        await asyncio.sleep(1.0)  # let the layer and the allocator settle between windows
        windows[name] = await _window(bench, name, VARIANTS[name], clients=clients, owners=True,
                                      rate=rate, seconds=seconds, drain=drain,
                                      tenants=tenants if name in TENANT_VARIANTS else 0)
    baseline_cpu = windows["unfiltered"]["cpu_percent"]["daphne"]
    for name in variants:
        window = windows[name]
        window["daphne_cpu_vs_unfiltered"] = round(window["cpu_percent"]["daphne"] / baseline_cpu, 2) \
            if baseline_cpu else None
    tenancy = tenants if set(TENANT_VARIANTS) & set(variants) else None
    return {"clients": clients, "baseline_clients": baseline_clients, "rate": rate, "seconds": seconds,
            "variants": variants, "tenants": tenancy, "windows": windows}
