"""The official Apache Kafka jars from Maven Central, fetched once per machine and cached."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

from scripts.servers.base import (
    JAVA_MISSING,
    JVM_FLAGS,
    KAFKA_CONF_DIR,
    KAFKA_VERSION,
    MVN_MISSING,
    run_checked,
)

logger = logging.getLogger(__name__)


def cache_dir() -> Path:
    """Per-machine cache root: $AETHERLINK_CACHE_DIR, else ~/.cache/aetherlink."""
    override = os.environ.get("AETHERLINK_CACHE_DIR")
    return Path(override) if override else Path.home() / ".cache" / "aetherlink"


def kafka_home(version: str = KAFKA_VERSION) -> Path:
    return cache_dir() / f"kafka-{version}"


def kafka_jars_dir(version: str = KAFKA_VERSION) -> Path:
    """The folder of all runtime jars of Kafka `version`, fetched with Maven on first use.

    Maven writes into a temporary sibling that is renamed to ``libs`` only on success, so an
    existing ``libs`` is always complete; a lock file makes concurrent first runs fetch once.
    """
    libs = kafka_home(version) / "libs"
    if libs.is_dir():
        return libs
    libs.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(libs.parent / ".lock"):
        if not libs.is_dir():  # another process may have fetched while we waited for the lock
            _jars_fetch(libs, version)
    return libs


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield  # closing the file releases the lock


def _jars_fetch(libs: Path, version: str) -> None:
    mvn = shutil.which("mvn")
    if mvn is None:
        raise RuntimeError(MVN_MISSING)
    logger.info(
        "Fetching Apache Kafka %s jars from Maven Central into %s (once per machine, ~10s)",
        version,
        libs,
    )
    for stale in libs.parent.glob("libs.partial-*"):  # left by a fetch that was killed; we hold the lock
        shutil.rmtree(stale, ignore_errors=True)
    staging = Path(tempfile.mkdtemp(prefix="libs.partial-", dir=libs.parent))
    try:
        run_checked(
            [
                mvn,
                "-q",
                "-B",
                "-f",
                str(KAFKA_CONF_DIR / "pom.xml"),
                f"-Dkafka.version={version}",
                "dependency:copy-dependencies",
                "-DincludeScope=runtime",
                f"-DoutputDirectory={staging}",
            ],
            what="Maven fetch of the Kafka jars",
        )
        staging.chmod(0o755)  # mkdtemp makes it private; the jars are no secret
        staging.rename(libs)
    finally:
        shutil.rmtree(staging, ignore_errors=True)  # a no-op once renamed


def java_binary() -> str:
    java = shutil.which("java")
    if java is None:
        raise RuntimeError(JAVA_MISSING)
    return java


def cds_archive(version: str = KAFKA_VERSION) -> Path:
    """Where the class-data-sharing archive for this JVM build and Kafka's jar folder lives.

    Keyed by the java binary, its mtime and the jar folder's path: a JVM refuses (with a warning)
    an archive dumped by another build or for another class path, and would never get a fresh one.
    """
    java = os.path.realpath(java_binary())
    identity = f"{java}:{os.stat(java).st_mtime_ns}:{kafka_home(version)}"
    key = hashlib.sha1(identity.encode()).hexdigest()[:12]
    return kafka_home(version) / "cds" / f"kafka-{key}.jsa"


def classpath(libs: Path) -> str:
    # Explicit and sorted, not 'libs/*': a class archive is only valid for the exact class path
    # it was dumped with, and a wildcard expands in directory order.
    return os.pathsep.join(sorted(str(jar) for jar in libs.glob("*.jar")))


def cds_usable(archive: Path, version: str = KAFKA_VERSION) -> bool:
    """Try the archive once (~0.1s): a truncated one crashes the JVM instead of being ignored."""
    argv = [
        java_binary(),
        *JVM_FLAGS,
        f"-XX:SharedArchiveFile={archive}",
        "-Xshare:on",
        "-cp",
        classpath(kafka_jars_dir(version)),
        "-version",
    ]
    with tempfile.TemporaryDirectory() as scratch:  # a crash writes hs_err_pid*.log into cwd
        return subprocess.run(argv, capture_output=True, cwd=scratch, check=False).returncode == 0


