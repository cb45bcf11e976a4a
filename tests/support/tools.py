"""Tools the deployment tests run, installed by the test session when missing, cached per machine.

- nginx: Debian 12's `nginx-light` (1.22), with apt-get, when missing and we are root;
- docker-compose: Debian's 1.29, which resolves a compose file (`config`) with no Docker engine;
- PostgreSQL: Debian's `postgresql` (its server binaries under /usr/lib/postgresql/<major>/bin,
  not on PATH), for the tests that run a real PostgreSQL as a plain process (tests/support/postgres.py);
- the Prometheus Operator's and the Gateway API's CRDs: their Go modules, downloaded once per
  machine into Go's module cache;
- Apicurio Registry (the Schema Registry of tests/integration/test_schema_registry*.py): its
  prebuilt distribution from Maven Central, unpacked into the same cache (scripts/servers/apicurio.py);
- helm: built once from the Go module proxy (`go install`) into the same per-machine cache
  as the Kafka jars (`~/.cache/aetherlink`, or $AETHERLINK_CACHE_DIR), for the chart's tests;
- the Kafka jars themselves, of both versions the tests run (KAFKA_VERSION, KAFKA_OLDEST_VERSION),
  fetched with Maven (scripts/servers/kafka_jars.py), so no test's timeout pays for the download.

`make test` runs this module first (`python -m tests.support.tools`), outside any test's timeout:
the first helm build takes a few minutes; after that every call returns at once.
"""

from __future__ import annotations

import functools
import glob
import json
import logging
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from scripts.servers import KAFKA_OLDEST_VERSION, KAFKA_VERSION, cache_dir, file_lock, kafka_jars_dir
from scripts.servers.apicurio import apicurio_home
from scripts.servers.go_build import go_binary, go_tool_ensure
from tests.support.browser import apt_get

logger = logging.getLogger(__name__)

HELM_MODULE = "helm.sh/helm/v4/cmd/helm"
# Helm 4's newest release whose module builds with the machines' Go 1.26.
HELM_VERSION = "v4.3.2"

# The CRDs the chart renders objects of, as their projects publish them in their Go modules
# (downloaded, not built, into Go's module cache): their schemas validate ServiceMonitor,
# PrometheusRule and HTTPRoute (tests/support/crds.py).
CRD_MODULES = {
    "monitoring.coreos.com": ("github.com/prometheus-operator/prometheus-operator", "v0.85.0",
                              "example/prometheus-operator-crd"),
    "gateway.networking.k8s.io": ("sigs.k8s.io/gateway-api", "v1.6.3", "config/crd/standard"),
}

NOT_ROOT = "{what} is missing and we are not root, so it cannot be installed for you: run `{command}`"


def _apt_ensure(binary: str, package: str) -> str:
    """Path of `binary`, installing Debian's `package` (without recommends) when missing and root."""
    found = shutil.which(binary) or (f"/usr/sbin/{binary}" if Path(f"/usr/sbin/{binary}").exists() else None)
    if found:
        return found
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise RuntimeError(NOT_ROOT.format(what=binary, command=f"sudo apt-get install -y {package}"))
    logger.warning("%s not found; installing Debian's %s package with apt-get", binary, package)
    with file_lock(Path(tempfile.gettempdir()) / "aetherlink-apt.lock"):
        if not shutil.which(binary):
            apt_get("update")
            apt_get("install", "-y", "--no-install-recommends", package)
    found = shutil.which(binary) or shutil.which(binary, path="/usr/sbin")
    if found is None:
        raise RuntimeError(f"apt-get installed {package} but {binary} is not on PATH")
    return found


def nginx_ensure() -> str:
    # The package's post-install starts no daemon here (no init system runs it); if one did,
    # it would be on port 80, which no test uses.
    return _apt_ensure("nginx", "nginx-light")


def docker_compose_ensure() -> str:
    return _apt_ensure("docker-compose", "docker-compose")


POSTGRES_BIN_GLOB = "/usr/lib/postgresql/*/bin"


def _postgres_bindir() -> Path | None:
    found = sorted((Path(d) for d in glob.glob(POSTGRES_BIN_GLOB) if (Path(d) / "postgres").exists()),
                   key=lambda d: int(d.parent.name) if d.parent.name.isdigit() else 0)
    return found[-1] if found else None


def postgres_ensure() -> Path:
    """The newest installed PostgreSQL's bin directory (initdb, postgres), installing Debian's
    `postgresql` when there is none and we are root. Its post-install makes a `postgres` user,
    which the tests run the server as when they are root (initdb refuses root)."""
    bindir = _postgres_bindir()
    if bindir is not None:
        return bindir
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise RuntimeError(NOT_ROOT.format(what="PostgreSQL", command="sudo apt-get install -y postgresql"))
    logger.warning("PostgreSQL not found; installing Debian's postgresql package with apt-get")
    with file_lock(Path(tempfile.gettempdir()) / "aetherlink-apt.lock"):
        if _postgres_bindir() is None:
            apt_get("update")
            apt_get("install", "-y", "--no-install-recommends", "postgresql")
    bindir = _postgres_bindir()
    if bindir is None:
        raise RuntimeError(f"apt-get installed postgresql but no {POSTGRES_BIN_GLOB}/postgres exists")
    return bindir


def helm_ensure() -> str:
    """helm from the cache, built there with `go install` on first use."""
    binary = cache_dir() / f"helm-{HELM_VERSION}" / "helm"
    return str(go_tool_ensure(f"{HELM_MODULE}@{HELM_VERSION}", binary, tool="helm"))


@functools.cache
def crd_dir(group: str) -> Path:
    """The folder of `group`'s CRD files in its Go module, downloaded once per machine."""
    module, version, folder = CRD_MODULES[group]
    go = go_binary("the CRD schemas")
    env = {**os.environ, "GOFLAGS": "-mod=mod", "GOTOOLCHAIN": "local"}
    done = subprocess.run([go, "mod", "download", "-json", f"{module}@{version}"], env=env,
                          cwd=tempfile.gettempdir(), capture_output=True, text=True, check=False, timeout=900)
    if done.returncode != 0:
        output = done.stdout[-1000:] + done.stderr[-1000:]
        raise RuntimeError(f"go mod download {module}@{version} failed:\n{output}")
    return Path(json.loads(done.stdout)["Dir"]) / folder


if __name__ == "__main__":  # `make test` runs this first, outside any test's timeout
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    for version in (KAFKA_VERSION, KAFKA_OLDEST_VERSION):
        print(f"kafka {version}: {kafka_jars_dir(version)}")
    print(f"nginx: {nginx_ensure()}")
    print(f"docker-compose: {docker_compose_ensure()}")
    print(f"postgresql: {postgres_ensure()}")
    print(f"helm: {helm_ensure()}")
    print(f"apicurio registry: {apicurio_home()}")
    for group in CRD_MODULES:
        print(f"{group} CRDs: {crd_dir(group)}")
