"""Apicurio Registry 3 (its Confluent-compatible API under /apis/ccompat/v7) as a plain loopback
process: the prebuilt distribution from Maven Central, fetched with Maven once per machine into
the cache, run with Java 21 or newer (the Temurin 25 JDK when present), in-memory storage.

In-memory storage forgets every schema on a restart, and a registry that answers "unknown id"
is believed: `persistent=True` keeps them in an H2 file under data_dir instead, as a real
deployment keeps them in its database.
"""

from __future__ import annotations

import shutil
import tarfile
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from scripts.servers.base import LOOPBACK, MVN_MISSING, free_port, port_ensure_free, run_checked
from scripts.servers.kafka_jars import cache_dir, file_lock
from scripts.servers.process import ProcessBacked, ServerProcess

APICURIO_VERSION = "3.3.3"
APICURIO_ARTIFACT = f"io.apicurio:apicurio-registry-app:{APICURIO_VERSION}:tar.gz:all"
JAVA_CANDIDATES = ("/usr/lib/jvm/temurin-25-jdk-amd64/bin/java",)
JAVA21_MISSING = "Apicurio Registry needs Java 21 or newer: install the Temurin 25 JDK (or set APICURIO_JAVA)"
CCOMPAT = "/apis/ccompat/v7"


def apicurio_home() -> Path:
    """The unpacked distribution (quarkus-run.jar), fetched with Maven on first use."""
    home = cache_dir() / f"apicurio-registry-{APICURIO_VERSION}"
    if (home / "quarkus-run.jar").is_file():
        return home
    home.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(home.parent / ".apicurio.lock"):
        if not (home / "quarkus-run.jar").is_file():
            _fetch(home)
    return home


def _fetch(home: Path) -> None:
    mvn = shutil.which("mvn")
    if mvn is None:
        raise RuntimeError(MVN_MISSING)
    with tempfile.TemporaryDirectory(prefix="apicurio-", dir=home.parent) as staging:
        run_checked([mvn, "-q", "-B", "dependency:copy", f"-Dartifact={APICURIO_ARTIFACT}",
                     f"-DoutputDirectory={staging}"], what="Maven fetch of Apicurio Registry")
        unpacked = Path(staging) / "unpacked"
        with tarfile.open(next(Path(staging).glob("*.tar.gz"))) as archive:
            archive.extractall(unpacked, filter="tar")
        shutil.rmtree(home, ignore_errors=True)
        unpacked.rename(home)


def java21_binary() -> str:
    for candidate in JAVA_CANDIDATES:
        if Path(candidate).is_file():
            return candidate
    raise RuntimeError(JAVA21_MISSING)


@dataclass
class ApicurioServer(ProcessBacked):
    """A throwaway registry on 127.0.0.1: HTTP and its management (health) port both on loopback."""

    data_dir: Path
    port: int = field(default_factory=free_port)
    management_port: int = field(default_factory=free_port)
    persistent: bool = False

    def __post_init__(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._process = ServerProcess("apicurio", self.data_dir, markers=("quarkus-run.jar", f"{self.port}"))

    @property
    def url(self) -> str:
        """The Confluent-compatible API's base URL (SCHEMA_REGISTRY_URL)."""
        return f"http://{LOOPBACK}:{self.port}{CCOMPAT}"

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/subjects", timeout=2) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    def start(self, timeout: float = 120) -> float:
        """Start and wait until the API answers; returns the seconds that took (the cold start)."""
        port_ensure_free(self.port)
        port_ensure_free(self.management_port)
        home = apicurio_home()
        began = time.monotonic()
        self._process.spawn([
            java21_binary(), "-Xmx384m", "-XX:TieredStopAtLevel=1",
            f"-Dquarkus.http.port={self.port}", f"-Dquarkus.http.host={LOOPBACK}",
            f"-Dquarkus.management.port={self.management_port}", f"-Dquarkus.management.host={LOOPBACK}",
            *self._storage_flags(),
            "-jar", str(home / "quarkus-run.jar"),
        ])
        self._process.wait_ready(self.ready, timeout)
        return time.monotonic() - began

    def _storage_flags(self) -> list[str]:
        if not self.persistent:
            return []
        return [f"-Dapicurio.datasource.url=jdbc:h2:file:{self.data_dir / 'registry'}"]

    def stop(self, timeout: float = 30) -> None:
        self._process.stop(timeout)

    def kill(self) -> None:
        self._process.kill()
