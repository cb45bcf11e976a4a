"""What the benchmark reads about processes from /proc: memory, CPU time, open files, load.

Linux only, standard library only, so the orchestrator needs no extra package.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def rss_kb(pid: int) -> int:
    """Resident set size of `pid` in KiB (VmRSS), 0 once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def cpu_seconds(pid: int) -> float:
    """User plus system CPU seconds of every thread of `pid` so far."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat[stat.rindex(")") + 2 :].split()  # the command name may hold spaces
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def process_tree(pid: int) -> list[int]:
    """`pid` and its descendants (a supervisor and its workers), from /proc's children lists."""
    pids, index = [pid], 0
    while index < len(pids):
        task_dir = Path(f"/proc/{pids[index]}/task")
        try:
            tasks = list(task_dir.iterdir())
        except OSError:
            tasks = []
        for task in tasks:
            try:
                pids.extend(int(child) for child in (task / "children").read_text().split())
            except OSError:
                continue
        index += 1
    return pids


def open_fds(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return 0


def load_average() -> list[float]:
    """The 1, 5 and 15 minute load averages, as `uptime` prints them."""
    return [float(value) for value in Path("/proc/loadavg").read_text().split()[:3]]


@dataclass
class CpuMeter:
    """CPU use of some processes over a window, in percent of one core."""

    pids: dict[str, int]
    _start: dict[str, float] | None = None
    _started_at: float = 0.0

    def start(self, now: float) -> None:
        self._start = {name: cpu_seconds(pid) for name, pid in self.pids.items()}
        self._started_at = now

    def percent(self, now: float) -> dict[str, float]:
        assert self._start is not None, "start() first"
        wall = max(now - self._started_at, 1e-9)
        return {
            name: round(100 * (cpu_seconds(pid) - self._start[name]) / wall, 1)
            for name, pid in self.pids.items()
        }


def kernel_send_queue_bytes(port: int) -> int | None:
    """Bytes the kernel holds unsent on the server's established sockets of `port` (ss Send-Q).

    Not part of any process's RSS: what a stalled client pins in the kernel. None without `ss`.
    """
    try:
        done = subprocess.run(["ss", "-tnH", "state", "established", f"( sport = :{port} )"],
                              capture_output=True, text=True, check=False, timeout=30)
    except (FileNotFoundError, subprocess.TimeoutExpired):
        return None
    return sum(int(line.split()[1]) for line in done.stdout.splitlines() if line.strip())
