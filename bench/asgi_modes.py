"""The benchmark's web processes' application: the service plus bench-only endpoints.

    python -m bench.web -b 127.0.0.1 -p PORT   (AetherLink's server, see bench/web.py)

Everything the service serves (`/crm-events`, `/readyz`, ...) goes to
`aetherlink.asgi.application` unchanged. Added, for the benchmark only:
  /bench/inproc, /bench/inproc/publish  the in-process per-event-send baseline (bench/baseline.py,
                                        Django views, routed by bench/urls.py)
  /bench/groups                         the per-connection-group design (bench/groups.py)
  /bench/stats                          this process's stream counts, tasks, RSS and open files
  /bench/profile?action=start|stop      cProfile of this process between the two calls; stop
                                        answers with the top functions by own time (text)
  /bench/tracemalloc?action=start|stop&per=N
                                        tracemalloc from start (a first snapshot) to stop (a
                                        second one): the growth between them, per N objects
                                        (connections), by file, by line and by traceback (JSON)
  /bench/objects?action=start|stop&per=N&holders=T1,T2
                                        objects by type from start to stop, per N, and what holds
                                        one instance of each named type (bench/object_census.py)
"""

from __future__ import annotations

import asyncio
import cProfile
import gc
import io
import json
import os
import pstats
import time
import tracemalloc
from pathlib import Path
from typing import Any

# Before aetherlink.asgi sets up Django: the same settings, with bench/urls.py as the URLconf.
os.environ["DJANGO_SETTINGS_MODULE"] = "bench.settings"

from aetherlink.asgi import application as service_application  # noqa: E402
from bench.baseline import broadcaster  # noqa: E402
from bench.groups import GroupStreamConsumer, groups_application  # noqa: E402
from bench.object_census import census_start, census_stop  # noqa: E402
from crm_events import metrics  # noqa: E402
from crm_events.fanout import registry  # noqa: E402


def _proc_status(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


class GcPauses:
    """Durations of this process's garbage collections, per generation (observation only)."""

    def __init__(self) -> None:
        self.started: float | None = None
        self.count = [0, 0, 0]
        self.total = [0.0, 0.0, 0.0]
        self.longest = [0.0, 0.0, 0.0]
        gc.callbacks.append(self.callback)

    def callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self.started = time.perf_counter()
        elif self.started is not None:
            generation, took = info["generation"], time.perf_counter() - self.started
            self.count[generation] += 1
            self.total[generation] += took
            self.longest[generation] = max(self.longest[generation], took)

    def snapshot(self) -> dict[str, Any]:
        return {"collections": list(self.count), "total_ms": [round(t * 1000, 1) for t in self.total],
                "longest_ms": [round(t * 1000, 1) for t in self.longest]}


gc_pauses = GcPauses()


def stats_snapshot() -> dict[str, Any]:
    """Read-only look at this process; the hub registry is read, never created."""
    hubs = list(registry.hubs())
    return {
        "hub_streams": sum(hub.stream_count for hub in hubs),
        "hub_subscribers": sum(len(hub.subscribers) for hub in hubs),
        "hub_catching_up": sum(len(hub.catching_up) for hub in hubs),
        "inproc_streams": len(broadcaster.queues),
        "inproc_published": broadcaster.published,
        "groups_streams": GroupStreamConsumer.streams,
        "tasks": len(asyncio.all_tasks()),
        "rss_kb": _proc_status("VmRSS"),
        "threads": _proc_status("Threads"),
        "open_fds": len(os.listdir("/proc/self/fd")),
        "gc": gc_pauses.snapshot(),
        "write_rounds": write_rounds(),
    }


def write_rounds() -> dict[str, Any]:
    """The hub's rounds of writes so far (aetherlink_hub_write_round_seconds): count, sum and
    the cumulative count at each bucket's upper bound."""
    out: dict[str, Any] = {"count": 0.0, "sum_s": 0.0, "buckets": {}}
    for sample in (s for family in metrics.WRITE_ROUND.collect() for s in family.samples):
        if sample.name.endswith("_count"):
            out["count"] = sample.value
        elif sample.name.endswith("_sum"):
            out["sum_s"] = sample.value
        elif sample.name.endswith("_bucket"):
            out["buckets"][sample.labels["le"]] = sample.value
    return out


async def _stats(scope: dict[str, Any], receive: Any, send: Any) -> None:
    body = json.dumps(stats_snapshot()).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


_profiler: cProfile.Profile | None = None
PROFILE_TOP = 40


def _profile(action: str) -> str:
    """Start, or stop and summarise, a profile of everything this process runs."""
    global _profiler
    if action == "start":
        _profiler = cProfile.Profile()
        _profiler.enable()
        return "started"
    if _profiler is None:
        return "not started"
    _profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(_profiler, stream=out)
    stats.sort_stats("tottime").print_stats(PROFILE_TOP)
    stats.sort_stats("cumulative").print_stats(PROFILE_TOP)
    _profiler = None
    return out.getvalue()


TRACE_FRAMES = 8
TRACE_TOP = 30
_traced: tracemalloc.Snapshot | None = None


def _trace_filter(snapshot: tracemalloc.Snapshot) -> tracemalloc.Snapshot:
    return snapshot.filter_traces([tracemalloc.Filter(False, tracemalloc.__file__)])


def _tracemalloc(query: dict[str, str]) -> dict[str, Any]:
    """Start tracing (and take the first snapshot), or take the second and report the growth."""
    global _traced
    if query.get("action") == "start":
        gc.collect()
        tracemalloc.start(TRACE_FRAMES)
        _traced = _trace_filter(tracemalloc.take_snapshot())
        return {"started": True}
    if _traced is None:
        return {"started": False}
    gc.collect()
    after = _trace_filter(tracemalloc.take_snapshot())
    per = max(int(query.get("per", "1")), 1)
    peak_kb = round(tracemalloc.get_traced_memory()[1] / 1024, 1)
    report: dict[str, Any] = {"per": per, "traced_peak_kb": peak_kb}
    total = sum(stat.size_diff for stat in after.compare_to(_traced, "filename"))
    report["total_bytes_per"] = round(total / per, 1)
    for key in ("filename", "lineno", "traceback"):
        stats = after.compare_to(_traced, key)
        report[f"by_{key}"] = [
            {"where": _where(stat.traceback, key), "bytes_per": round(stat.size_diff / per, 1),
             "blocks_per": round(stat.count_diff / per, 2)}
            for stat in sorted(stats, key=lambda s: -s.size_diff)[:TRACE_TOP]
        ]
    tracemalloc.stop()
    _traced = None
    return report


def _where(traceback: tracemalloc.Traceback, key: str) -> str | list[str]:
    frame = traceback[0]
    if key == "filename":
        return frame.filename
    if key == "lineno":
        return f"{frame.filename}:{frame.lineno}"
    return [f"{f.filename}:{f.lineno}" for f in reversed(traceback)]  # the allocation first, then its callers


def _query(scope: dict[str, Any]) -> dict[str, str]:
    pairs = scope["query_string"].decode().split("&")
    return dict(pair.split("=", 1) for pair in pairs if "=" in pair)


def _objects(query: dict[str, str]) -> dict[str, Any]:
    if query.get("action") == "start":
        census_start()
        return {"started": True}
    holders = [name for name in query.get("holders", "").split(",") if name]
    return census_stop(max(int(query.get("per", "1")), 1), holders)


async def _json(send: Any, value: Any) -> None:
    body = json.dumps(value).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _text(send: Any, text: str) -> None:
    body = text.encode()
    headers = [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def application(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "http":
        if scope["path"] == "/bench/profile":
            return await _text(send, _profile(scope["query_string"].decode().removeprefix("action=")))
        if scope["path"] == "/bench/tracemalloc":
            return await _json(send, _tracemalloc(_query(scope)))
        if scope["path"] == "/bench/objects":
            return await _json(send, _objects(_query(scope)))
        if scope["path"] == "/bench/groups":
            return await groups_application(scope, receive, send)
        if scope["path"] == "/bench/stats":
            return await _stats(scope, receive, send)
    return await service_application(scope, receive, send)
