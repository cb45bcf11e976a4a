"""Several web processes behind nginx: the service's path with docker/nginx.conf in front.

The same N clients x R events/s, first with ONE web process behind nginx, then with W of
them (`--web-processes`), so the two windows differ only in the number of processes: the
clients connect to nginx (least_conn spreads the streams), nginx to the web processes over
HTTP/1.1. Each window is the fixed-load window of the kafka mode (mode_fanout.fanout_mode).

Clients speak plain HTTP/1.1 to nginx by default: the one Python load client is already the
busiest process of the machine at 2,000 x 10 without TLS, and decrypting every stream would
make it the bottleneck of the measurement. `--nginx-tls` makes them speak TLS (HTTP/1.1, no
ALPN) to nginx's https listener instead, to measure that cost.
"""

from __future__ import annotations

import time
from typing import Any

from bench.context import Bench
from bench.mode_fanout import fanout_mode

WARM_UP_RATE, WARM_UP_SECONDS, WARM_UP_DRAIN = 5.0, 1.0, 10.0


def _connections(clients: int) -> int:
    """nginx connections per worker: each stream holds one to its client and one upstream."""
    return max(1024, 2 * clients + 256)


async def _window(bench: Bench, processes: int, *, clients: int, rate: float, seconds: float,
                  drain: float, tls: bool) -> dict[str, Any]:
    await bench.stack.webs_scale(processes)
    nginx = await bench.stack.nginx_start(tls=tls, connections=_connections(clients))
    cafile = str(bench.stack.tls_dir / "fullchain.pem") if tls else None
    try:
        with bench.pool.target(nginx.https_port, cafile=cafile):
            # A new web process does its lazy set-up on its first streams, not in the window.
            await fanout_mode(bench, "service", clients=2 * processes, rate=WARM_UP_RATE,
                              seconds=WARM_UP_SECONDS, drain=WARM_UP_DRAIN)
            print(f"{time.strftime('%X')}    {processes} web process(es) behind nginx", flush=True)
            result = await fanout_mode(bench, "service", clients=clients, rate=rate, seconds=seconds,
                                       drain=drain)
    finally:
        await bench.stack.nginx_stop()
    result["web_processes"] = processes
    result["streams_per_process"] = result["open"]["server_streams_per_process"]
    cpu = result["cpu_percent"]
    result["cpu_percent_web"] = round(sum(v for k, v in cpu.items() if k.startswith("daphne")), 1)
    result["cpu_percent_nginx"] = round(sum(v for k, v in cpu.items() if k.startswith("nginx")), 1)
    return result


async def nginx_mode(bench: Bench, *, clients: int, rate: float, seconds: float, drain: float,
                     web_processes: int, tls: bool) -> dict[str, Any]:
    """One window per process count (1, then `web_processes`), the same clients and rate."""
    windows = {}
    try:
        for processes in (1, web_processes):
            windows[str(processes)] = await _window(
                bench, processes, clients=clients, rate=rate, seconds=seconds, drain=drain, tls=tls)
    finally:
        await bench.stack.webs_scale(1)  # the other modes, and a rerun, see one process again
    one, many = windows["1"], windows[str(web_processes)]
    return {
        "clients": clients, "rate": rate, "seconds": seconds, "tls": tls,
        "web_processes": [1, web_processes], "windows": windows,
        "delivered_per_s_ratio": round(many["delivered_per_s"] / max(one["delivered_per_s"], 1), 2),
    }
