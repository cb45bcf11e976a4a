"""The fan-out benchmark runs end to end in its smallest configuration (not a timed test).

It reuses the session's Kafka and Redis and starts its own consume_events and web processes
(and nginx for the nginx mode), like `make bench`; every number it reports is left unjudged
here except exact delivery. Drains are generous (events late under load still count) and the
pauses that only matter for memory readings are short: the run takes about 40 s on an idle
machine.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from bench.layer_probe import LayerBacklogProbe
from bench.peer_centrifugo import NOT_BUILT, centrifugo_find
from bench.waits import task_stop
from tests.support.processes import ROOT
from tests.support.tools import nginx_ensure

SMALLEST = [
    "--clients", "5", "--duration", "2", "--drain", "20",
    "--step-clients", "5", "--step-rates", "5", "--step-seconds", "1", "--step-drain", "20",
    "--slow-clients", "2", "--slow-readers", "2", "--slow-seconds", "2", "--slow-drain", "20",
    "--slow-read-seconds", "1", "--churn-cycles", "20", "--churn-concurrency", "5",
    "--filtered-clients", "5", "--filtered-rate", "10", "--filtered-baseline", "2",
    "--ingest-rate", "50", "--ingest-seconds", "1", "--ingest-backlog", "200", "--ingest-drain", "30",
    "--settle", "0.2", "--progress",
    "--modes", "kafka,inproc,groups,step,slow,churn,filtered,nginx,memory,ingest", "--web-processes", "2",
]
FANOUT_KEYS = {
    "design", "clients", "rate", "expected", "delivered", "lost", "duplicates", "latency",
    "delivered_per_s", "server_rss_mib", "kb_per_idle_connection", "cpu_percent", "loadavg",
}
LATENCY_KEYS = {"p50_ms", "p99_ms", "max_ms"}
# Every wait inside the benchmark is bounded, so it ends by itself; this is the backstop.
BENCH_TIMEOUT = 240
STOP_TIMEOUT = 90  # after SIGTERM it stops its load clients, Daphne and consumer (bench/fanout.py)


def _report(printed: str) -> str:
    """The benchmark's output, and the end of its Daphne and consumer logs."""
    parts = [printed[-6000:]]
    found = re.search(r"starting the stack in (\S+)", printed)
    for name, lines in (("daphne", 40), ("daphne-2", 20), ("consumer", 15)):
        log = Path(found.group(1)) / f"{name}.log" if found else None
        if log is not None and log.exists():
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
            parts.append(f"--- last {lines} lines of {log}:\n{tail}")
    return "\n".join(parts)


@pytest.mark.timeout(BENCH_TIMEOUT + STOP_TIMEOUT + 30)
def test_benchmark_smallest_run_delivers_everything_and_reports_every_mode(
    kafka, redis_server, tmp_path: Path
):
    nginx_ensure()  # the nginx mode runs the real nginx (Debian's nginx-light)
    output = tmp_path / "fanout.json"
    bench = subprocess.Popen(
        [sys.executable, "-m", "bench.fanout", *SMALLEST, "--kafka", kafka.bootstrap,
         "--redis", redis_server.url, "--json", str(output)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        printed, _ = bench.communicate(timeout=BENCH_TIMEOUT)
    except subprocess.TimeoutExpired:
        bench.send_signal(signal.SIGTERM)  # it cancels the run and stops its processes
        try:
            printed, _ = bench.communicate(timeout=STOP_TIMEOUT)
            ending = f"stopped by SIGTERM (exit code {bench.returncode})"
        except subprocess.TimeoutExpired:
            bench.kill()
            printed, _ = bench.communicate()
            ending = f"still running {STOP_TIMEOUT} s after SIGTERM, killed (its Daphne may be left)"
        raise AssertionError(
            f"benchmark still running after {BENCH_TIMEOUT} s, {ending}:\n{_report(printed)}") from None
    assert bench.returncode == 0, _report(printed)
    result = json.loads(output.read_text())

    assert set(result) == {"meta", "modes", "targets", "complete", "failed"}
    assert (result["complete"], result["failed"]) == (True, {})
    assert set(result["meta"]) >= {"date", "cpus", "loadavg_start", "loadavg_end", "frame_bytes"}
    modes = result["modes"]
    assert set(modes) == {
        "kafka", "inproc", "groups", "step", "slow", "churn", "filtered", "nginx", "memory", "ingest"}
    for name in ("kafka", "inproc", "groups"):
        mode = modes[name]
        assert set(mode) >= FANOUT_KEYS, name
        assert set(mode["latency"]) >= LATENCY_KEYS, name
        assert mode["expected"] == 5 * 20, name
        assert (mode["delivered"], mode["duplicates"]) == (mode["expected"], 0), (name, _report(printed))
    for design in ("service", "inproc"):
        step = modes["step"][design]["steps"][0]
        assert "error" not in step, (design, step)
        assert step["delivered"] == step["expected"] == 5 * 5, (design, step)
    readers = modes["slow"]["readers_window"]
    assert readers["delivered"] == readers["expected"] > 0, readers
    assert set(modes["slow"]) >= {"rss_growth_mib", "rss_series_mib", "stalled_endings"}
    assert modes["churn"]["churn"]["failed"] == 0, modes["churn"]["churn"]
    assert modes["churn"]["leaked_subscribers"] == 0, modes["churn"]["after"]
    assert {target["target"] for target in result["targets"]}
    filtered = modes["filtered"]["windows"]
    assert set(filtered) == {"unfiltered", "key", "where"}
    assert filtered["unfiltered"]["expected"] == 2 * 20
    for name, window in filtered.items():
        assert set(window) >= FANOUT_KEYS | {"wrong_client", "daphne_cpu_us"}, name
        expected = 2 * 20 if name == "unfiltered" else 20  # filtered: each event to its one client
        assert (window["delivered"], window["duplicates"], window["wrong_client"]) == (expected, 0, 0), (
            name, _report(printed))
    memory = modes["memory"]
    assert memory["clients"] == 5 and memory["traced_kb_per_idle_connection"] > 0, memory
    assert {"by_filename", "by_lineno", "by_traceback"} <= set(memory["tracemalloc"])
    nginx = modes["nginx"]
    assert (nginx["web_processes"], nginx["tls"], set(nginx["windows"])) == ([1, 2], False, {"1", "2"})
    for count, window in nginx["windows"].items():
        assert set(window) >= FANOUT_KEYS, count
        assert (window["delivered"], window["duplicates"]) == (5 * 20, 0), (count, _report(printed))
        assert len(window["streams_per_process"]) == int(count) and sum(window["streams_per_process"]) == 5
        assert {"daphne", "nginx-1"} <= set(window["cpu_percent"]), window["cpu_percent"]
    assert "daphne-2" in nginx["windows"]["2"]["cpu_percent"]
    assert "through nginx (plain HTTP from the clients)" in printed
    ingest = modes["ingest"]
    steady, intake = ingest["steady"], ingest["intake"]
    assert (steady["events"], steady["delivered"], steady["duplicates"]) == (50, 50, 0), steady
    assert steady["consumer_us_per_event"] > 0 and ingest["idle_cpu_percent"] >= 0, ingest
    assert (intake["backlog"], intake["delivered"], intake["duplicates"]) == (200, 200, 0), intake
    assert intake["lossless"] and intake["intake_per_s"] > 0, intake
    assert "ingest: idle" in printed


PEER_SMALLEST = ["--modes", "peer", "--peer-workloads", "5x5", "--peer-repeats", "1", "--peer-workers", "2",
                 "--duration", "2", "--drain", "20", "--settle", "0.2", "--progress"]
PEER_KEYS = {"server", "clients", "expected", "delivered", "lost", "duplicates", "latency",
             "cpu_us_per_delivery", "kb_per_idle_connection", "loadavg", "processes"}


def _bench_run(arguments: list[str], output: Path) -> str:
    """Run the benchmark to its end (SIGTERM past BENCH_TIMEOUT); what it printed."""
    bench = subprocess.Popen([sys.executable, "-m", "bench.fanout", *arguments, "--json", str(output)],
                             cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        printed, _ = bench.communicate(timeout=BENCH_TIMEOUT)
    except subprocess.TimeoutExpired:
        bench.send_signal(signal.SIGTERM)  # it cancels the run and stops its processes
        printed, _ = bench.communicate(timeout=STOP_TIMEOUT)
        raise AssertionError(
            f"benchmark still running after {BENCH_TIMEOUT} s:\n{_report(printed)}") from None
    assert bench.returncode == 0, _report(printed)
    return printed


@pytest.mark.timeout(BENCH_TIMEOUT + STOP_TIMEOUT + 30)
def test_benchmark_peer_mode_smallest_run_delivers_everything_through_both_servers(
    kafka, redis_server, tmp_path: Path
):
    """AetherLink (--workers 2) and Centrifugo each deliver every event of the smallest window
    exactly once; only run where Centrifugo is already built (`make centrifugo`), never built here."""
    if centrifugo_find() is None:
        pytest.skip(NOT_BUILT)
    output = tmp_path / "peer.json"
    printed = _bench_run([*PEER_SMALLEST, "--kafka", kafka.bootstrap, "--redis", redis_server.url], output)
    result = json.loads(output.read_text())
    assert (result["complete"], result["failed"]) == (True, {}), _report(printed)
    peer = result["modes"]["peer"]
    runs = peer["workloads"]["5x5"]["runs"]
    assert set(runs) == {"aetherlink", "centrifugo"}
    for server, windows in runs.items():
        (window,) = windows
        assert set(window) >= PEER_KEYS, server
        assert window["clients"] == 5 and window["expected"] == 5 * 10, (server, window)
        assert (window["delivered"], window["duplicates"]) == (5 * 10, 0), (server, _report(printed))
        assert window["cpu_us_per_delivery"] is not None, (server, window)  # ticks of 10 ms: may be 0
    assert runs["aetherlink"][0]["processes"] == 3  # the supervisor and its two workers
    assert "peer mode: aetherlink-web --workers 2 vs Centrifugo" in printed


async def test_layer_backlog_probe_stops_even_when_stopped_inside_a_redis_command(redis_server):
    """The hang this benchmark once had: on Python 3.11, redis-py can swallow the cancellation
    of a task that is in the middle of a command (bench/waits.py), and a window then waited for
    ever for its probe. Stopped at random moments (many inside a command), it always ends."""
    rng = random.Random(20261126)
    for _ in range(60):
        probe = LayerBacklogProbe(redis_server.url, "bench-probe-test")
        task = asyncio.create_task(probe.run())
        await asyncio.sleep(rng.uniform(0, 0.03))
        probe.stop()
        await task_stop(task, "the layer backlog probe", seconds=5)
