"""What every server module shares: loopback, free ports, short commands, PID files."""

from __future__ import annotations

import logging
import socket
import subprocess
from collections.abc import Sequence
from pathlib import Path

logger = logging.getLogger(__name__)


# The broker `make dev`, the tests and the benchmark run; KAFKA_OLDEST_VERSION is the oldest one
# docs/production.md promises ("Which Kafka"), and the tests marked `kafka_oldest` run on it too
# (tests/integration/conftest.py).
KAFKA_VERSION = "4.4.0"
KAFKA_OLDEST_VERSION = "3.9.1"
LOOPBACK = "127.0.0.1"

KAFKA_CONF_DIR = Path(__file__).resolve().parents[1] / "kafka"
# C1-only JIT: measured ~20% sooner to ready on 2 cores, and a test broker never runs long
# enough for C2 to pay off. -XX:+UseSerialGC measured no gain; -Xshare:auto is the default, and
# the class archive (see KafkaServer._cds_flags) is what halves the start time.
JVM_FLAGS = ("-Xmx512m", "-XX:TieredStopAtLevel=1")
LOG_TAIL_LINES = 30
POLL_SECONDS = 0.1
KILL_WAIT_SECONDS = 10.0

MVN_MISSING = "Maven (mvn) is needed once per machine to fetch the Kafka jars: apt-get install -y maven"
KAFKA_DATA_OF_ANOTHER_VERSION = (
    "{data_dir} holds the data of a Kafka {found} broker, which is started only with that release, "
    "not {wanted} (an older broker cannot read a newer one's data): ask for Kafka {found}, "
    "use another state dir, or remove this one"
)
JAVA_MISSING = "Java 17 or newer is needed to run Kafka: apt-get install -y openjdk-17-jre-headless"
REDIS_MISSING = (
    "redis-server is not installed and we are not root, so it cannot be installed for you: "
    "run `sudo apt-get install -y redis-server`"
)



def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


def port_ensure_free(port: int) -> None:
    """Fail early with a clear message: a busy port would otherwise look like our server answering."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((LOOPBACK, port))
        except OSError as exc:
            raise RuntimeError(f"port {LOOPBACK}:{port} is in use by another process ({exc})") from exc


def run_checked(argv: Sequence[str], what: str, env: dict[str, str] | None = None) -> None:
    """Run a short command to completion; on failure raise with the tail of its output."""
    try:
        done = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
    except FileNotFoundError as exc:
        raise RuntimeError(f"{what}: {argv[0]} not found") from exc
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).splitlines()[-LOG_TAIL_LINES:])
        raise RuntimeError(f"{what} failed with exit code {done.returncode}:\n{tail}")


def pid_matches(pid: int, markers: Sequence[str]) -> bool:
    """True if pid is alive and its command line still names our server (PIDs get reused)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    text = cmdline.replace(b"\0", b" ").decode(errors="replace")  # empty for a zombie
    return all(marker in text for marker in markers)


def pid_alive(pid: int) -> bool:
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


def pid_read(pid_file: Path) -> int | None:
    try:
        return int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return None


