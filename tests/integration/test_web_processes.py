"""Several web processes on one host: `make dev WEB_PROCESSES=N` (scripts/dev.sh), `make dev
WEB_WORKERS=N` (aetherlink-web --workers on one port), and N Daphne processes sharing one
listening socket (`daphne --fd`), the systemd recipe of docs/production.md."""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import BinaryIO

import pytest

from scripts.servers import free_port
from tests.integration.conftest import Stack
from tests.support.processes import ROOT, http_get, http_status_or_none, wait_until
from tests.support.worker_sockets import listeners

pytestmark = pytest.mark.integration


def consecutive_free_ports(count: int) -> int:
    """The first of `count` consecutive ports that were all free a moment ago, below Linux's
    ephemeral range (32768 and up), where the clients of other tests could take one meanwhile."""
    rng = random.Random()
    for _ in range(50):
        first = rng.randrange(20000, 32000)
        try:
            for port in range(first, first + count):
                with socket.socket() as probe:
                    probe.bind(("127.0.0.1", port))
        except OSError:
            continue
        return first
    raise AssertionError(f"no {count} consecutive free ports")


def dev_env(tmp_path: Path, **overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KAFKA_", "REDIS", "DJANGO_", "SSE_"))}
    env.update(
        PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        DEV_STATE_DIR=str(tmp_path / "dev"), DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
        KAFKA_PORT=str(free_port()), KAFKA_CONTROLLER_PORT=str(free_port()), REDIS_PORT=str(free_port()),
        KAFKA_TOPIC=f"dev-{tmp_path.name[-20:]}", PYTHONUNBUFFERED="1", **overrides,
    )
    return env


def dev_start(env: dict[str, str], log: BinaryIO) -> subprocess.Popen[bytes]:
    """`make dev` as from a terminal: in a session of its own, Ctrl-C neither ignored nor blocked
    (whatever this test process inherited from the one that started it)."""
    return subprocess.Popen(["bash", "scripts/dev.sh"], cwd=ROOT, env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=terminal_signals)


def terminal_signals() -> None:
    # A command run in the background by a non-interactive shell (as a CI job may run the suite)
    # starts with SIGINT ignored, and bash can neither trap nor reset an inherited ignored signal.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_SETMASK, [])


def signal_masks(pid: int) -> str:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:  # it ended meanwhile
        return ""
    return " ".join(line for line in status.splitlines() if line.startswith(("SigBlk", "SigIgn", "SigCgt")))


def ctrl_c(dev: subprocess.Popen[bytes], log: Path, within: float = 60) -> int:
    """Ctrl-C to `make dev`: its exit code once everything it started has stopped, within `within`
    seconds. Past that, the processes still running and the log's end are the failure."""
    dev.send_signal(signal.SIGINT)
    try:
        return dev.wait(within)
    except subprocess.TimeoutExpired:
        left = subprocess.run(["ps", "-o", "pid,etimes,stat,args", "--sid", str(dev.pid)],
                              capture_output=True, text=True, check=False).stdout + signal_masks(dev.pid)
        os.killpg(dev.pid, signal.SIGKILL)
        dev.wait(10)
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-60:])
        raise AssertionError(f"make dev still ran {within:g}s after Ctrl-C:\n{left}\n{tail}") from None


def test_make_dev_starts_web_processes_on_consecutive_ports_and_stops_them_all(tmp_path):
    first = consecutive_free_ports(2)
    env = dev_env(tmp_path, PORT=str(first), WEB_PROCESSES="2")
    log = (tmp_path / "dev.log").open("wb")
    dev = dev_start(env, log)
    ports = [first, first + 1]
    try:
        for port in ports:
            wait_until(
                lambda port=port: http_status_or_none(port, "/readyz") == 200 or dev.poll() is not None,
                timeout=120, what=f"make dev's web process on {port} to be ready",
            )
            assert dev.poll() is None, (tmp_path / "dev.log").read_text()
        banner = (tmp_path / "dev.log").read_text()
        shown = f"2 Daphne processes, each on its own port (no balancer in front): {first} {first + 1}"
        assert shown in banner
        for port in ports:
            assert http_get(port, "/")[1]["topic"] == env["KAFKA_TOPIC"]
    finally:
        code = ctrl_c(dev, tmp_path / "dev.log")
        log.close()
    assert code in (0, 130), (tmp_path / "dev.log").read_text()
    for port in ports:
        assert http_status_or_none(port, "/healthz") is None, f"a web process on {port} outlived make dev"
    status = subprocess.run([sys.executable, "-m", "scripts.servers", "status", "--state-dir",
                             env["DEV_STATE_DIR"]], cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert status.stdout.splitlines() == ["kafka: not running", "redis: not running"], status.stdout


def test_make_dev_with_workers_serves_them_on_one_port_and_stops_them_all(tmp_path):
    port = consecutive_free_ports(1)
    env = dev_env(tmp_path, PORT=str(port), WEB_WORKERS="2")
    log = (tmp_path / "dev.log").open("wb")
    dev = dev_start(env, log)
    try:
        wait_until(lambda: listeners(port) == 2 or dev.poll() is not None, timeout=120,
                   what="make dev's two workers to listen")
        wait_until(lambda: http_status_or_none(port, "/readyz") == 200 or dev.poll() is not None,
                   timeout=120, what="make dev's workers to be ready")
        assert dev.poll() is None, (tmp_path / "dev.log").read_text()
        shown = f"2 workers sharing port {port} (SO_REUSEPORT), under one supervisor"
        assert shown in (tmp_path / "dev.log").read_text()
    finally:
        code = ctrl_c(dev, tmp_path / "dev.log")
        log.close()
    assert code in (0, 130), (tmp_path / "dev.log").read_text()
    assert listeners(port) == 0 and http_status_or_none(port, "/healthz") is None
    assert "stopping 2 workers (SIGTERM)" in (tmp_path / "dev.log").read_text()


def test_make_dev_refuses_a_bad_process_count(tmp_path):
    done = subprocess.run(["bash", "scripts/dev.sh"], cwd=ROOT, env=dev_env(tmp_path, WEB_PROCESSES="0"),
                          capture_output=True, text=True, timeout=30)
    assert (done.returncode, done.stderr.strip()) == (
        2, "WEB_PROCESSES must be a positive number of web processes, got '0'")


def access_count(log: str, marker: str) -> int:
    return sum(marker in line for line in log.splitlines() if "daphne.access" in line)


def test_two_daphne_processes_share_one_listening_socket(stack: Stack, capsys):
    """What systemd's `Sockets=` gives every service that names the same socket unit: one
    listening socket, inherited as a file descriptor (`daphne --fd 3`). Each connection is
    accepted by one of the processes, and one of them dying refuses nobody. Nothing balances
    them, though: every process is woken and the quickest accepts (the figure is printed)."""
    listener = socket.create_server(("127.0.0.1", 0), backlog=128)
    listener.set_inheritable(True)
    port = listener.getsockname()[1]
    stack.consumer()
    try:
        first, _ = stack.daphne("daphne-a", port=port, listen_fd=listener.fileno())
        second, _ = stack.daphne("daphne-b", port=port, listen_fd=listener.fileno())
    finally:
        listener.close()  # the processes hold their own copies
    stack.wait_ready(port)
    for seq in range(60):
        assert http_get(port, f"/healthz?n={seq}")[0] == 200
    served = [access_count(process.log_text(), "GET /healthz?n=") for process in (first, second)]
    assert sum(served) == 60, served
    with capsys.disabled():
        print(f"\nSHARED SOCKET: 60 sequential connections, accepted {served[0]} / {served[1]}")

    first.signal(signal.SIGKILL)
    first.process.wait(10)
    for seq in range(20):  # no connection is refused: the socket lives on in the other process
        assert http_get(port, f"/healthz?after={seq}")[0] == 200
    assert access_count(second.log_text(), "GET /healthz?after=") == 20
    stack.wait_ready(port)
