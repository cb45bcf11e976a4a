"""Real Kafka (KRaft) and Redis as plain loopback processes, for the test session and `make dev`.

Our machines run no Docker engine, so we run the genuine servers as child processes: Apache Kafka
from its Maven Central jars (fetched once per machine, see kafka_jars_dir) and Debian's
redis-server. Each server runs in its own session and keeps a PID file and a log file in its data
directory, so another process (``python -m scripts.localstack down``) can find it and stop it by
its own PID. The module imports only the standard library: the Kafka readiness check speaks the
Kafka wire protocol itself, so the CLI works from any Python 3.11.

    python -m scripts.localstack up --state-dir .localstack [--kafka-port 9092]
        [--kafka-controller-port 9093] [--redis-port 6379]
    python -m scripts.localstack status --state-dir .localstack
    python -m scripts.localstack down --state-dir .localstack
"""

from __future__ import annotations

import argparse
import base64
import collections
import contextlib
import fcntl
import hashlib
import logging
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

logger = logging.getLogger(__name__)

KAFKA_VERSION = "4.4.0"
LOOPBACK = "127.0.0.1"

_KAFKA_CONF_DIR = Path(__file__).resolve().parent / "kafka"
# C1-only JIT: measured ~20% sooner to ready on 2 cores, and a test broker never runs long
# enough for C2 to pay off. -XX:+UseSerialGC measured no gain; -Xshare:auto is the default, and
# the class archive (see KafkaServer._cds_flags) is what halves the start time.
_JVM_FLAGS = ("-Xmx512m", "-XX:TieredStopAtLevel=1")
_LOG_TAIL_LINES = 30
_POLL_SECONDS = 0.1
_KILL_WAIT_SECONDS = 10.0

MVN_MISSING = "Maven (mvn) is needed once per machine to fetch the Kafka jars: apt-get install -y maven"
JAVA_MISSING = "Java 17 or newer is needed to run Kafka: apt-get install -y openjdk-17-jre-headless"
REDIS_MISSING = (
    "redis-server is not installed and we are not root, so it cannot be installed for you: "
    "run `sudo apt-get install -y redis-server`"
)


# --- small helpers ------------------------------------------------------------------------------


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


def _port_ensure_free(port: int) -> None:
    """Fail early with a clear message: a busy port would otherwise look like our server answering."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((LOOPBACK, port))
        except OSError as exc:
            raise RuntimeError(f"port {LOOPBACK}:{port} is in use by another process ({exc})") from exc


def _run_checked(argv: Sequence[str], what: str, env: dict[str, str] | None = None) -> None:
    """Run a short command to completion; on failure raise with the tail of its output."""
    try:
        done = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
    except FileNotFoundError as exc:
        raise RuntimeError(f"{what}: {argv[0]} not found") from exc
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).splitlines()[-_LOG_TAIL_LINES:])
        raise RuntimeError(f"{what} failed with exit code {done.returncode}:\n{tail}")


def _wait_until(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            return False
        time.sleep(_POLL_SECONDS)
    return True


def _pid_matches(pid: int, markers: Sequence[str]) -> bool:
    """True if pid is alive and its command line still names our server (PIDs get reused)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    text = cmdline.replace(b"\0", b" ").decode(errors="replace")  # empty for a zombie
    return all(marker in text for marker in markers)


def _pid_alive(pid: int) -> bool:
    """True until every thread of the process has exited and so its sockets are closed.

    Neither an empty command line nor a zombie main thread is enough: a JVM's other threads
    keep running (and its ports bound) for a while after both.
    """
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return False
    status = dict(line.split(":", 1) for line in lines if ":" in line)
    zombie = status.get("State", "").strip().startswith(("Z", "X"))
    return not (zombie and status.get("Threads", "1").strip() == "1")


def _pid_read(pid_file: Path) -> int | None:
    try:
        return int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return None


# --- one supervised process -----------------------------------------------------------------------


@dataclass
class _Process:
    """A server we launched, found again through data_dir/<name>.pid from any Python process.

    It only ever signals a PID whose command line still contains all of `markers`.
    """

    name: str
    data_dir: Path
    markers: tuple[str, ...]
    _popen: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def pid_file(self) -> Path:
        return self.data_dir / f"{self.name}.pid"

    @property
    def log_file(self) -> Path:
        return self.data_dir / f"{self.name}.log"

    def pid(self) -> int | None:
        """The server's PID while it runs, else None."""
        if self._popen is not None and self._popen.poll() is None:
            return self._popen.pid
        recorded = _pid_read(self.pid_file)
        if recorded is not None and _pid_matches(recorded, self.markers):
            return recorded
        return None

    def spawn(self, argv: Sequence[str]) -> None:
        """Launch in a new session, so it outlives the CLI and a Ctrl-C of `make dev` misses it."""
        with self.log_file.open("ab") as log:
            log.write(f"=== localstack: starting {self.name} at {time.ctime()} ===\n".encode())
            log.flush()
            self._popen = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.data_dir,
                start_new_session=True,
            )
        self.pid_file.write_text(f"{self._popen.pid}\n")

    def wait_ready(self, ready: Callable[[], bool], timeout: float) -> None:
        """Return once ready() is true; raise with the log tail if the process dies or times out."""
        deadline = time.monotonic() + timeout
        while not ready():
            if self.pid() is None:
                raise RuntimeError(self._failure(f"exited during startup (code {self._exit_code()})"))
            if time.monotonic() >= deadline:
                self.kill()  # never leave a half-started server behind
                raise RuntimeError(self._failure(f"was not ready after {timeout:g}s"))
            time.sleep(_POLL_SECONDS)

    def stop(self, timeout: float) -> bool:
        """SIGTERM, wait, then SIGKILL. True if it exited on SIGTERM (or was not running)."""
        pid = self.pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return True
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        if self._wait_gone(pid, timeout):
            self.pid_file.unlink(missing_ok=True)
            return True
        logger.warning("%s (pid %s) still runs %ss after SIGTERM; sending SIGKILL", self.name, pid, timeout)
        self.kill()
        return False

    def kill(self) -> None:
        """SIGKILL and wait until the PID is gone, so its ports are free on return."""
        pid = self.pid()
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            self._wait_gone(pid, _KILL_WAIT_SECONDS)
        self.pid_file.unlink(missing_ok=True)

    def log_tail(self, lines: int = _LOG_TAIL_LINES) -> str:
        try:
            with self.log_file.open(errors="replace") as log:
                return "".join(collections.deque(log, maxlen=lines))
        except OSError:
            return "(no log)"

    def _wait_gone(self, pid: int, timeout: float) -> bool:
        if self._popen is not None and self._popen.pid == pid:
            try:
                self._popen.wait(timeout)  # also reaps our child, or it would linger as a zombie
                return True
            except subprocess.TimeoutExpired:
                return False
        return _wait_until(lambda: not _pid_alive(pid), timeout)

    def _exit_code(self) -> int | str:
        code = self._popen.poll() if self._popen is not None else None
        return "unknown" if code is None else code

    def _failure(self, what: str) -> str:
        return f"{self.name} {what}; last {_LOG_TAIL_LINES} lines of {self.log_file}:\n{self.log_tail()}"


# --- Kafka jars, cached once per machine ----------------------------------------------------------


def cache_dir() -> Path:
    """Per-machine cache root: $AETHERLINK_CACHE_DIR, else ~/.cache/aetherlink."""
    override = os.environ.get("AETHERLINK_CACHE_DIR")
    return Path(override) if override else Path.home() / ".cache" / "aetherlink"


def kafka_home() -> Path:
    return cache_dir() / f"kafka-{KAFKA_VERSION}"


def kafka_jars_dir() -> Path:
    """The folder of all Kafka runtime jars, fetched with Maven on first use.

    Maven writes into a temporary sibling that is renamed to ``libs`` only on success, so an
    existing ``libs`` is always complete; a lock file makes concurrent first runs fetch once.
    """
    libs = kafka_home() / "libs"
    if libs.is_dir():
        return libs
    libs.parent.mkdir(parents=True, exist_ok=True)
    with _file_lock(libs.parent / ".lock"):
        if not libs.is_dir():  # another process may have fetched while we waited for the lock
            _jars_fetch(libs)
    return libs


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield  # closing the file releases the lock


def _jars_fetch(libs: Path) -> None:
    mvn = shutil.which("mvn")
    if mvn is None:
        raise RuntimeError(MVN_MISSING)
    logger.info(
        "Fetching Apache Kafka %s jars from Maven Central into %s (once per machine, ~10s)",
        KAFKA_VERSION,
        libs,
    )
    for stale in libs.parent.glob("libs.partial-*"):  # left by a fetch that was killed; we hold the lock
        shutil.rmtree(stale, ignore_errors=True)
    staging = Path(tempfile.mkdtemp(prefix="libs.partial-", dir=libs.parent))
    try:
        _run_checked(
            [
                mvn,
                "-q",
                "-B",
                "-f",
                str(_KAFKA_CONF_DIR / "pom.xml"),
                f"-Dkafka.version={KAFKA_VERSION}",
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


def _java() -> str:
    java = shutil.which("java")
    if java is None:
        raise RuntimeError(JAVA_MISSING)
    return java


def _cds_archive() -> Path:
    """Where the class-data-sharing archive for this JVM build and jar folder lives.

    Keyed by the java binary, its mtime and the jar folder's path: a JVM refuses (with a warning)
    an archive dumped by another build or for another class path, and would never get a fresh one.
    """
    java = os.path.realpath(_java())
    identity = f"{java}:{os.stat(java).st_mtime_ns}:{kafka_home()}"
    key = hashlib.sha1(identity.encode()).hexdigest()[:12]
    return kafka_home() / "cds" / f"kafka-{key}.jsa"


def _classpath(libs: Path) -> str:
    # Explicit and sorted, not 'libs/*': a class archive is only valid for the exact class path
    # it was dumped with, and a wildcard expands in directory order.
    return os.pathsep.join(sorted(str(jar) for jar in libs.glob("*.jar")))


def _cds_usable(archive: Path) -> bool:
    """Try the archive once (~0.1s): a truncated one crashes the JVM instead of being ignored."""
    argv = [
        _java(),
        *_JVM_FLAGS,
        f"-XX:SharedArchiveFile={archive}",
        "-Xshare:on",
        "-cp",
        _classpath(kafka_jars_dir()),
        "-version",
    ]
    with tempfile.TemporaryDirectory() as scratch:  # a crash writes hs_err_pid*.log into cwd
        return subprocess.run(argv, capture_output=True, cwd=scratch, check=False).returncode == 0


# --- Kafka wire-protocol readiness probe ----------------------------------------------------------

_CLIENT_ID = b"aetherlink-localstack"
# Metadata request v4 (api key 3, correlation id 1): an empty topic list (we only need the
# brokers and the controller) and allow_auto_topic_creation=false.
_METADATA_BODY = struct.pack(">hhih", 3, 4, 1, len(_CLIENT_ID)) + _CLIENT_ID + struct.pack(">i?", 0, False)
_METADATA_REQUEST = struct.pack(">i", len(_METADATA_BODY)) + _METADATA_BODY


def kafka_metadata_ok(port: int, timeout: float = 2.0) -> bool:
    """True once a Metadata request to 127.0.0.1:port lists a live broker and a controller."""
    try:
        with socket.create_connection((LOOPBACK, port), timeout=timeout) as sock:
            sock.sendall(_METADATA_REQUEST)
            (size,) = struct.unpack(">i", _recv_exact(sock, 4))
            return _metadata_ready(_recv_exact(sock, size))
    except (OSError, struct.error):
        return False


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    data = bytearray()
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError("broker closed the connection")
        data += chunk
    return bytes(data)


def _metadata_ready(body: bytes) -> bool:
    """Read a Metadata v4 response as far as the broker count and the controller id."""
    count: int = struct.unpack_from(">i", body, 8)[0]  # after correlation id and throttle time
    offset = 12
    for _ in range(count):
        offset = _skip_string(body, offset + 4)  # node id, host
        offset = _skip_string(body, offset + 4)  # port, rack (nullable)
    offset = _skip_string(body, offset)  # cluster id (nullable)
    controller_id: int = struct.unpack_from(">i", body, offset)[0]
    return count > 0 and controller_id >= 0


def _skip_string(body: bytes, offset: int) -> int:
    length: int = struct.unpack_from(">h", body, offset)[0]
    return offset + 2 + max(length, 0)  # -1 is a null string


def _kafka_cluster_id() -> str:
    """A Kafka Uuid string like `StorageTool random-uuid` prints, without starting a JVM for it."""
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not text.startswith("-"):  # Kafka avoids these too: they read as a CLI flag
            return text


# --- Kafka ----------------------------------------------------------------------------------------


@dataclass
class KafkaServer:
    """One combined broker+controller Apache Kafka node in KRaft mode on 127.0.0.1.

    Storage is formatted on the first start only, so stop() then start() keeps topics and records.
    An instance built on the data_dir of a broker started elsewhere (e.g. by the CLI) controls it.
    """

    port: int
    controller_port: int
    data_dir: Path
    _process: _Process = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.data_dir = Path(self.data_dir).resolve()
        self._process = _Process("kafka", self.data_dir, ("kafka.Kafka", str(self._properties_file)))

    @property
    def bootstrap(self) -> str:
        return f"{LOOPBACK}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._process.pid()

    @property
    def log_file(self) -> Path:
        return self._process.log_file

    def is_running(self) -> bool:
        return self.pid is not None

    def ready(self) -> bool:
        return kafka_metadata_ok(self.port)

    def start(self, timeout: float = 120) -> None:
        """Start the broker unless it already runs; return once it answers a metadata request."""
        if not self.is_running():
            self._launch()
        started = time.monotonic()
        self._process.wait_ready(self.ready, timeout)
        logger.info(
            "Kafka %s ready on %s (pid %s) after %.1fs",
            KAFKA_VERSION,
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

    def _launch(self) -> None:
        _port_ensure_free(self.port)
        _port_ensure_free(self.controller_port)
        libs = kafka_jars_dir()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._properties_file.write_text(self._properties())
        if not (self._log_dir / "meta.properties").exists():
            self._storage_format(libs)
        self._cds_dump.unlink(missing_ok=True)
        self._process.spawn(self._java_argv(libs, "kafka.Kafka", str(self._properties_file), record=True))

    def _storage_format(self, libs: Path) -> None:
        argv = self._java_argv(
            libs,
            "kafka.tools.StorageTool",
            "format",
            "--standalone",
            "-t",
            _kafka_cluster_id(),
            "-c",
            str(self._properties_file),
        )
        _run_checked(argv, what=f"Kafka storage format of {self._log_dir}")

    def _properties(self) -> str:
        settings = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.bootstrap.servers": f"{LOOPBACK}:{self.controller_port}",
            "listeners": f"PLAINTEXT://{LOOPBACK}:{self.port},CONTROLLER://{LOOPBACK}:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://{LOOPBACK}:{self.port}",
            "inter.broker.listener.name": "PLAINTEXT",
            "controller.listener.names": "CONTROLLER",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "log.dirs": str(self._log_dir),
            **_SINGLE_NODE_SETTINGS,
        }
        return "".join(f"{key}={value}\n" for key, value in settings.items())

    def _java_argv(self, libs: Path, main: str, *args: str, record: bool = False) -> list[str]:
        log_config = f"-Dlog4j2.configurationFile={_KAFKA_CONF_DIR / 'log4j2.yaml'}"
        jvm = [_java(), *_JVM_FLAGS, *self._cds_flags(record), log_config]
        return [*jvm, "-cp", _classpath(libs), main, *args]

    def _cds_flags(self, record: bool) -> list[str]:
        """Reuse the classes an earlier broker loaded (3.1s -> 1.6s to ready), or record them.

        The JVM dumps the archive when a broker exits on SIGTERM; stop() moves it into the cache.
        """
        archive = _cds_archive()
        if archive.exists():
            return [f"-XX:SharedArchiveFile={archive}"]
        return [f"-XX:ArchiveClassesAtExit={self._cds_dump}"] if record else []

    def _cds_adopt(self) -> None:
        """Move the archive the exiting JVM dumped into the cache, once a JVM has accepted it."""
        if not self._cds_dump.exists():
            return
        archive = _cds_archive()
        archive.parent.mkdir(parents=True, exist_ok=True)
        staging = archive.with_name(f"{archive.name}.{os.getpid()}.partial")
        shutil.copyfile(self._cds_dump, staging)  # the data dir may be on another filesystem
        if _cds_usable(staging):
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


# --- Redis ----------------------------------------------------------------------------------------


def redis_server_binary() -> str:
    """Path of redis-server, installing Debian's package first when missing and we are root."""
    found = shutil.which("redis-server")
    if found:
        return found
    if os.geteuid() != 0:
        raise RuntimeError(REDIS_MISSING)
    logger.info("redis-server not found; installing Debian's redis-server package with apt-get")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    wait_for_dpkg = ["-o", "DPkg::Lock::Timeout=300"]  # parallel CI jobs share one dpkg lock
    _run_checked(["apt-get", *wait_for_dpkg, "update"], what="apt-get update", env=env)
    _run_checked(
        ["apt-get", *wait_for_dpkg, "install", "-y", "redis-server"],
        what="apt-get install redis-server",
        env=env,
    )
    found = shutil.which("redis-server")
    if found is None:
        raise RuntimeError("apt-get installed redis-server but it is not on PATH")
    return found


@dataclass
class RedisServer:
    """A throwaway Redis on 127.0.0.1: no persistence, output in data_dir/redis.log."""

    port: int
    data_dir: Path
    _process: _Process = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.data_dir = Path(self.data_dir).resolve()
        # --set-proc-title no keeps the argv (with --dir) in /proc, which is how a PID is recognised.
        self._process = _Process("redis", self.data_dir, ("redis-server", f"--dir {self.data_dir} "))

    @property
    def url(self) -> str:
        return f"redis://{LOOPBACK}:{self.port}/0"

    @property
    def pid(self) -> int | None:
        return self._process.pid()

    @property
    def log_file(self) -> Path:
        return self._process.log_file

    def is_running(self) -> bool:
        return self.pid is not None

    def ready(self) -> bool:
        """True if the server answers PING (inline protocol, no client library needed)."""
        try:
            with socket.create_connection((LOOPBACK, self.port), timeout=1.0) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    def start(self, timeout: float = 30) -> None:
        """Start Redis unless it already runs; return once it answers PING."""
        if not self.is_running():
            _port_ensure_free(self.port)
            self.data_dir.mkdir(parents=True, exist_ok=True)
            self._process.spawn(self._argv())
        self._process.wait_ready(self.ready, timeout)
        logger.info("Redis ready on %s (pid %s)", self.url, self.pid)

    def stop(self, timeout: float = 10) -> None:
        """Stop by SIGTERM to its own PID (SIGKILL after timeout); a no-op if it is not running."""
        self._process.stop(timeout)

    def kill(self) -> None:
        """SIGKILL, for fault tests."""
        self._process.kill()

    def _argv(self) -> list[str]:
        return [
            redis_server_binary(),
            "--port",
            str(self.port),
            "--bind",
            LOOPBACK,
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self.data_dir),
            "--daemonize",
            "no",
            "--set-proc-title",
            "no",
        ]


# --- CLI ------------------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m scripts.localstack", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=("up", "down", "status"))
    parser.add_argument(
        "--state-dir",
        type=Path,
        required=True,
        help="holds kafka/ and redis/ data dirs with their PID and log files",
    )
    parser.add_argument("--kafka-port", type=int, default=9092)
    parser.add_argument("--kafka-controller-port", type=int, default=9093)
    parser.add_argument("--redis-port", type=int, default=6379)
    return parser


def _services(args: argparse.Namespace) -> list[tuple[str, KafkaServer | RedisServer, str]]:
    kafka = KafkaServer(args.kafka_port, args.kafka_controller_port, args.state_dir / "kafka")
    redis = RedisServer(args.redis_port, args.state_dir / "redis")
    return [("kafka", kafka, kafka.bootstrap), ("redis", redis, redis.url)]


def _up(name: str, server: KafkaServer | RedisServer, address: str) -> None:
    pid = server.pid
    if pid is not None and not server.ready():
        raise RuntimeError(
            f"{name}: pid {pid} from {server.data_dir} runs but does not answer on "
            f"{address}; run `down` first or see {server.log_file}"
        )
    verb = "reusing" if pid is not None else "started"
    server.start()
    print(f"{name}: {verb} pid {server.pid}, ready at {address} (log {server.log_file})", flush=True)


def _down(name: str, server: KafkaServer | RedisServer, address: str) -> None:
    pid = server.pid
    server.stop()
    print(f"{name}: stopped pid {pid}" if pid is not None else f"{name}: not running", flush=True)


def _status(name: str, server: KafkaServer | RedisServer, address: str) -> None:
    pid = server.pid
    if pid is None:
        print(f"{name}: not running", flush=True)
        return
    state = "ready" if server.ready() else "NOT answering"
    print(f"{name}: pid {pid}, {state} at {address}", flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    command = {"up": _up, "down": _down, "status": _status}[args.command]
    try:
        for name, server, address in _services(args):
            command(name, server, address)
    except RuntimeError as exc:
        logger.error("%s", exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
