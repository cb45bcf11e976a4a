"""Prometheus's `promtool`, when this machine has it, to check the rules and PromQL we ship.

It is not installed by `make test`: building it from the Go module proxy takes a long time
(`make promtool`, once per machine, into `~/.cache/aetherlink/promtool-<version>/`). Without
it the monitoring tests check names and labels with their own PromQL reading, and say so.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from scripts.servers.go_build import go_tool_ensure
from scripts.servers.kafka_jars import cache_dir

logger = logging.getLogger(__name__)

PROMTOOL_VERSION = "v0.316.0"  # the Go module version of Prometheus 3.x's cmd/promtool
PROMTOOL_MODULE = f"github.com/prometheus/prometheus/cmd/promtool@{PROMTOOL_VERSION}"


def promtool_path() -> Path:
    return cache_dir() / f"promtool-{PROMTOOL_VERSION}" / "promtool"


def promtool_find() -> str | None:
    """The cached promtool, or one on PATH; None when this machine has neither."""
    cached = promtool_path()
    if cached.exists():
        return str(cached)
    return shutil.which("promtool")


def promtool_build() -> str:
    """Build promtool with `go install` into the per-machine cache (slow: many minutes)."""
    return str(go_tool_ensure(PROMTOOL_MODULE, promtool_path(), tool="promtool"))


if __name__ == "__main__":  # `make promtool`
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    print(f"promtool: {promtool_find() or promtool_build()}")
