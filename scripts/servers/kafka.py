"""A real single-node Apache Kafka (KRaft, broker and controller) as a plain loopback process."""

from __future__ import annotations

import logging
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from scripts.servers.base import (
    JVM_FLAGS,
    KAFKA_CONF_DIR,
    KAFKA_DATA_OF_ANOTHER_VERSION,
    KAFKA_VERSION,
    LOOPBACK,
    port_ensure_free,
    run_checked,
)
from scripts.servers.kafka_jars import cds_archive, cds_usable, classpath, java_binary, kafka_jars_dir
from scripts.servers.kafka_wire import kafka_cluster_id, kafka_metadata_ok
from scripts.servers.process import ProcessBacked, ServerProcess

logger = logging.getLogger(__name__)


@dataclass
class KafkaServer(ProcessBacked):
    """One combined broker+controller Apache Kafka node in KRaft mode on 127.0.0.1.

    Storage is formatted on the first start only, so stop() then start() keeps topics and records.
    An instance built on the data_dir of a broker started elsewhere (e.g. by the CLI) controls it.
    `version` is the Apache Kafka release whose jars it runs (3.9 or newer: KRaft with
    `format --standalone`); each version's jars and class archive are cached apart.
    """

    port: int
    controller_port: int
    data_dir: Path
    # Where clients reach it: another address of this machine (a bridge's, for pods in network
    # namespaces) makes the broker listen and advertise there instead of on loopback.
    host: str = LOOPBACK
    version: str = KAFKA_VERSION
    _process: ServerProcess = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.data_dir = Path(self.data_dir).resolve()
        self._process = ServerProcess("kafka", self.data_dir, ("kafka.Kafka", str(self._properties_file)))

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    def ready(self) -> bool:
        return kafka_metadata_ok(self.port, host=self.host)

    def start(self, timeout: float = 120) -> None:
        """Start the broker unless it already runs; return once it answers a metadata request."""
        if not self.is_running():
            self._launch()
        started = time.monotonic()
        self._process.wait_ready(self.ready, timeout)
        logger.info(
            "Kafka %s ready on %s (pid %s) after %.1fs",
            self.version,
            self.bootstrap,
            self.pid,
            time.monotonic() - started,
        )

    def stop(self, timeout: float = 30) -> None:
        """Stop by SIGTERM to its own PID (SIGKILL after timeout); a no-op if it is not running."""
        was_running = self.is_running()
        if self._process.stop(timeout) and was_running:
            self._cds_adopt()  # only a clean JVM exit leaves a complete class archive
        self._cds_dump.unlink(missing_ok=True)

    def kill(self) -> None:
        """SIGKILL, as a crash would: for fault tests. The data survives for the next start()."""
        self._process.kill()
        self._cds_dump.unlink(missing_ok=True)

    @property
    def _properties_file(self) -> Path:
        return self.data_dir / "server.properties"

    @property
    def _log_dir(self) -> Path:
        return self.data_dir / "kraft-logs"

    @property
    def _cds_dump(self) -> Path:
        return self.data_dir / "kafka.jsa.partial"

    @property
    def _version_file(self) -> Path:
        return self.data_dir / "kafka.version"

    def _launched_version(self) -> str:
        """The version the broker in data_dir was started with: the CLI's `down` is not told it,
        and a class archive dumped by one version's broker is only valid for that version's jars."""
        try:
            return self._version_file.read_text().strip() or self.version
        except OSError:
            return self.version

    def _launch(self) -> None:
        port_ensure_free(self.port)
        port_ensure_free(self.controller_port)
        formatted = (self._log_dir / "meta.properties").exists()
        if formatted:
            self._data_version_check()
        libs = kafka_jars_dir(self.version)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._properties_file.write_text(self._properties())
        self._version_file.write_text(f"{self.version}\n")
        if not formatted:
            self._storage_format(libs)
        self._cds_dump.unlink(missing_ok=True)
        self._process.spawn(self._java_argv(libs, "kafka.Kafka", str(self._properties_file), record=True))

    def _data_version_check(self) -> None:
        """Refuse data another release formatted: a downgrade fails deep in the broker's start
        (3.9.1 on 4.4.0's data: "Can't read version 4 of BrokerEndpoint"), which does not say
        which state dir to move aside. An upgrade is refused too: dev and test data are throwaway."""
        found = self._launched_version()
        if found != self.version:
            message = KAFKA_DATA_OF_ANOTHER_VERSION.format(
                data_dir=self.data_dir, found=found, wanted=self.version
            )
            raise RuntimeError(message)

    def _storage_format(self, libs: Path) -> None:
        argv = self._java_argv(
            libs,
            "kafka.tools.StorageTool",
            "format",
            "--standalone",
            "-t",
            kafka_cluster_id(),
            "-c",
            str(self._properties_file),
            *self.format_options(),
        )
        run_checked(argv, what=f"Kafka storage format of {self._log_dir}")

    def format_options(self) -> list[str]:
        """More `StorageTool format` options for a subclass: SCRAM users (`--add-scram`), say."""
        return []

    def _properties(self) -> str:
        settings = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.bootstrap.servers": f"{LOOPBACK}:{self.controller_port}",
            "listeners": f"PLAINTEXT://{self.host}:{self.port},CONTROLLER://{LOOPBACK}:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://{self.host}:{self.port}",
            "inter.broker.listener.name": "PLAINTEXT",
            "controller.listener.names": "CONTROLLER",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "log.dirs": str(self._log_dir),
            **_SINGLE_NODE_SETTINGS,
        }
        return "".join(f"{key}={value}\n" for key, value in settings.items())

    def _java_argv(self, libs: Path, main: str, *args: str, record: bool = False) -> list[str]:
        log_config = f"-Dlog4j2.configurationFile={KAFKA_CONF_DIR / 'log4j2.properties'}"
        jvm = [java_binary(), *JVM_FLAGS, *self._cds_flags(record), log_config]
        return [*jvm, "-cp", classpath(libs), main, *args]

    def _cds_flags(self, record: bool) -> list[str]:
        """Reuse the classes an earlier broker loaded (3.1s -> 1.6s to ready), or record them.

        The JVM dumps the archive when a broker exits on SIGTERM; stop() moves it into the cache.
        """
        archive = cds_archive(self.version)
        if archive.exists():
            return [f"-XX:SharedArchiveFile={archive}"]
        return [f"-XX:ArchiveClassesAtExit={self._cds_dump}"] if record else []

    def _cds_adopt(self) -> None:
        """Move the archive the exiting JVM dumped into the cache, once a JVM has accepted it."""
        if not self._cds_dump.exists():
            return
        version = self._launched_version()
        archive = cds_archive(version)
        archive.parent.mkdir(parents=True, exist_ok=True)
        staging = archive.with_name(f"{archive.name}.{os.getpid()}.partial")
        shutil.copyfile(self._cds_dump, staging)  # the data dir may be on another filesystem
        if cds_usable(staging, version):
            os.replace(staging, archive)  # atomic: a concurrent start never maps half a file
            logger.info("Saved the Kafka JVM class archive %s for faster starts", archive)
        else:
            staging.unlink()
            logger.warning("Discarded the JVM class archive Kafka dumped at exit: a JVM refused it")


# Internal topics get one replica on a one-node cluster; topics are created explicitly by our
# consumer and tests, so a typo must fail instead of creating a topic. After a kill -9 the
# controller refuses the new broker incarnation until the old session expires (9 s by default),
# so a shorter session (still 6 heartbeats long) makes fault tests restart in ~4 s, not ~12 s.
# Transactions need their state log to fit one node (one partition: created in a moment on first
# use, instead of 50); the log cleaner looks for compactable logs every second, not every 15 s.
_SINGLE_NODE_SETTINGS = {
    "offsets.topic.replication.factor": "1",
    "transaction.state.log.replication.factor": "1",
    "transaction.state.log.min.isr": "1",
    "transaction.state.log.num.partitions": "1",
    "log.cleaner.backoff.ms": "1000",
    "share.coordinator.state.topic.replication.factor": "1",
    "share.coordinator.state.topic.min.isr": "1",
    "default.replication.factor": "1",
    "min.insync.replicas": "1",
    "group.initial.rebalance.delay.ms": "0",
    "num.partitions": "3",
    "auto.create.topics.enable": "false",
    "delete.topic.enable": "true",
    "broker.heartbeat.interval.ms": "500",
    "broker.session.timeout.ms": "3000",
}


