"""Where and how a benchmark run was made: date, machine, load, versions, options."""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

from bench.procstat import load_average

PACKAGES = ("django", "channels", "channels-redis", "daphne", "twisted", "aiokafka", "redis")


def _git_commit(root: Path) -> str:
    try:
        done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True,
                              text=True, check=False, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return done.stdout.strip() or "unknown"


def run_meta(args: argparse.Namespace, *, load_start: list[float], frame_bytes: int,
             run_dir: Path) -> dict[str, Any]:
    options = {key: value for key, value in vars(args).items() if key != "json"}
    return {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "host": platform.node(), "cpus": os.cpu_count(), "python": platform.python_version(),
        "versions": {name: metadata.version(name) for name in PACKAGES},
        "commit": _git_commit(run_dir.parents[2]),
        "loadavg_start": load_start, "loadavg_end": load_average(),
        "frame_bytes": frame_bytes, "options": options, "logs": str(run_dir),
    }
