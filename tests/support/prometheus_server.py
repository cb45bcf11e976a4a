"""A real Prometheus server, built from the same Go module and version as promtool
(tests/support/promtool.py), for the cluster test: `make tools` builds it once per machine into
`~/.cache/aetherlink/prometheus-<version>/` (slow: several minutes the first time). Only its
HTTP API is used, so the web UI's assets are not built.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import tempfile
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from scripts.servers import cache_dir, file_lock
from tests.support.promtool import PROMTOOL_VERSION

logger = logging.getLogger(__name__)

PROMETHEUS_VERSION = PROMTOOL_VERSION
PROMETHEUS_MODULE = f"github.com/prometheus/prometheus/cmd/prometheus@{PROMETHEUS_VERSION}"
NO_GO = "Go is needed once per machine to build Prometheus: install Go 1.26 or newer"


def prometheus_find() -> str | None:
    binary = cache_dir() / f"prometheus-{PROMETHEUS_VERSION}" / "prometheus"
    return str(binary) if binary.exists() else None


def prometheus_ensure() -> str:
    """The cached Prometheus server, built with `go install` on first use."""
    home = cache_dir() / f"prometheus-{PROMETHEUS_VERSION}"
    binary = home / "prometheus"
    if binary.exists():
        return str(binary)
    go = shutil.which("go") or ("/usr/local/go/bin/go" if Path("/usr/local/go/bin/go").exists() else None)
    if go is None:
        raise RuntimeError(NO_GO)
    home.mkdir(parents=True, exist_ok=True)
    with file_lock(home / ".lock"):
        if not binary.exists():
            _build(go, binary)
    return str(binary)


def _build(go: str, binary: Path) -> None:
    logger.warning("building %s with go install into %s (once per machine)", PROMETHEUS_MODULE, binary.parent)
    with tempfile.TemporaryDirectory(dir=binary.parent) as staging:
        env = {**os.environ, "GOBIN": staging, "GOFLAGS": "-buildvcs=false", "GOTOOLCHAIN": "local"}
        done = subprocess.run([go, "install", PROMETHEUS_MODULE], env=env, capture_output=True, text=True,
                              timeout=3600, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"go install {PROMETHEUS_MODULE} failed:\n{done.stderr[-3000:]}")
        os.replace(Path(staging) / "prometheus", binary)  # atomic: never half a binary in the cache


def api_get(base_url: str, path: str, **params: str) -> Any:
    """The `data` of a Prometheus HTTP API answer; raises unless its status is success."""
    query = f"?{urllib.parse.urlencode(params)}" if params else ""
    with urllib.request.urlopen(f"{base_url}{path}{query}", timeout=10) as response:
        answer = json.loads(response.read())
    if answer.get("status") != "success":
        raise RuntimeError(f"Prometheus {path}: {answer}")
    return answer["data"]


if __name__ == "__main__":  # `make tools`
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    print(f"prometheus: {prometheus_ensure()}")
