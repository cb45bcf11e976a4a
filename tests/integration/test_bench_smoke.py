"""The fan-out benchmark runs end to end in its smallest configuration (not a timed test).

It reuses the session's Kafka and Redis and starts its own consume_events and Daphne, like
`make bench`; every number it reports is left unjudged here except exact delivery.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

from tests.support.processes import ROOT

SMALLEST = [
    "--clients", "5", "--duration", "2", "--drain", "20",
    "--step-clients", "5", "--step-rates", "5", "--step-seconds", "1", "--step-drain", "20",
    "--slow-clients", "2", "--slow-readers", "2", "--slow-seconds", "2",
    "--churn-cycles", "20", "--churn-concurrency", "5",
]
FANOUT_KEYS = {
    "design", "clients", "rate", "expected", "delivered", "lost", "duplicates", "latency",
    "delivered_per_s", "server_rss_mib", "kb_per_idle_connection", "cpu_percent", "loadavg",
}
LATENCY_KEYS = {"p50_ms", "p99_ms", "max_ms"}
BENCH_TIMEOUT = 220


def test_benchmark_smallest_run_delivers_everything_and_reports_every_mode(
    kafka, redis_server, tmp_path: Path
):
    output = tmp_path / "fanout.json"
    bench = subprocess.Popen(
        [sys.executable, "-m", "bench.fanout", *SMALLEST, "--kafka", kafka.bootstrap,
         "--redis", redis_server.url, "--json", str(output)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        printed, _ = bench.communicate(timeout=BENCH_TIMEOUT)
    except subprocess.TimeoutExpired:
        bench.send_signal(signal.SIGTERM)  # it stops its Daphne and consumer on the way out
        printed, _ = bench.communicate(timeout=60)
        raise AssertionError(f"benchmark still running after {BENCH_TIMEOUT}s:\n{printed[-4000:]}") from None
    assert bench.returncode == 0, printed[-4000:]
    result = json.loads(output.read_text())

    assert set(result) == {"meta", "modes", "targets"}
    assert set(result["meta"]) >= {"date", "cpus", "loadavg_start", "loadavg_end", "frame_bytes"}
    modes = result["modes"]
    assert set(modes) == {"kafka", "inproc", "groups", "step", "slow", "churn"}
    for name in ("kafka", "inproc", "groups"):
        assert set(modes[name]) >= FANOUT_KEYS, name
        assert set(modes[name]["latency"]) >= LATENCY_KEYS, name
        assert modes[name]["expected"] == 5 * 20, name
        assert modes[name]["delivered"] == modes[name]["expected"], name
        assert modes[name]["duplicates"] == 0, name
    for design in ("service", "inproc"):
        step = modes["step"][design]["steps"][0]
        assert step["delivered"] == step["expected"] == 5 * 5, design
    assert modes["slow"]["readers_window"]["delivered"] == modes["slow"]["readers_window"]["expected"]
    assert set(modes["slow"]) >= {"rss_growth_mib", "rss_series_mib", "stalled_endings"}
    assert modes["churn"]["churn"]["failed"] == 0
    assert modes["churn"]["leaked_subscribers"] == 0
    assert {target["target"] for target in result["targets"]}
