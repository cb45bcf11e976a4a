"""A real Prometheus server, built from the same Go module and version as promtool
(tests/support/promtool.py), for the cluster test: `make tools` builds it once per machine into
`~/.cache/aetherlink/prometheus-<version>/` (slow: several minutes the first time). Only its
HTTP API is used, so the web UI's assets are not built.
"""

from __future__ import annotations

import json
import logging
import urllib.parse
import urllib.request
from typing import Any

from scripts.servers import cache_dir
from scripts.servers.go_build import go_tool_ensure
from tests.support.promtool import PROMTOOL_VERSION

logger = logging.getLogger(__name__)

PROMETHEUS_VERSION = PROMTOOL_VERSION
PROMETHEUS_MODULE = f"github.com/prometheus/prometheus/cmd/prometheus@{PROMETHEUS_VERSION}"


def prometheus_find() -> str | None:
    binary = cache_dir() / f"prometheus-{PROMETHEUS_VERSION}" / "prometheus"
    return str(binary) if binary.exists() else None


def prometheus_ensure() -> str:
    """The cached Prometheus server, built with `go install` on first use."""
    binary = cache_dir() / f"prometheus-{PROMETHEUS_VERSION}" / "prometheus"
    # remove_all_sd leaves out the cloud service discoveries (and their SDKs), keeping the
    # file and http ones: the cluster test's targets come from files.
    return str(go_tool_ensure(PROMETHEUS_MODULE, binary, tool="Prometheus", tags="remove_all_sd"))


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
