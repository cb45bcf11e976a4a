"""The command line as people meet it, in real processes: settings errors as one line and
exit status 2, help without settings, produce_events without Kafka, consume_events' status
line, smoke through TLS."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crm_events.ingest.demo import LIFECYCLES
from scripts.servers import free_port
from tests.integration.conftest import json_values, produce
from tests.support.kafka_log import log_read
from tests.support.processes import ROOT, wait_until
from tests.unit.aetherlink.test_manage import INVALID_NUMBERS, NUMERIC

pytestmark = pytest.mark.integration

MANAGE = str(ROOT / "manage.py")
WEB = str(Path(sys.executable).parent / "aetherlink-web")
NO_SECRET = ("manage.py: configuration error: DJANGO_SECRET_KEY is not set. Set it to a long random "
             "string (or set DJANGO_DEBUG=true for local development).")
COMMANDS = ["consume_events", "produce_events", "smoke", "topics_create", "check", "migrate", "shell"]


def bare_env(**variables: str) -> dict[str, str]:
    """No DJANGO_*, no service variables: what a new user has before writing a .env."""
    return {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp"), **variables}


def run(argv: list[str], cwd: Path, timeout: float = 60, **variables: str) -> subprocess.CompletedProcess:
    return subprocess.run(argv, cwd=cwd, env=bare_env(**variables), capture_output=True, text=True,
                          timeout=timeout, check=False)


def manage(*args: str, cwd: Path, **variables: str) -> subprocess.CompletedProcess:
    return run([sys.executable, MANAGE, *args], cwd, **variables)


@pytest.mark.parametrize("args", [[], ["help"], ["--help"], ["help", "produce_events"],
                                  ["produce_events", "--help"], ["smoke", "-h"], ["migrate", "--help"]])
def test_help_needs_no_settings(args, tmp_path):
    done = manage(*args, cwd=tmp_path)  # an empty folder: no .env either
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    # One line says why only help is on offer.
    assert done.stderr.splitlines() == ["manage.py: help only; configuration error: DJANGO_SECRET_KEY "
                                        "is not set. Set it to a long random string (or set "
                                        "DJANGO_DEBUG=true for local development)."]
    if not args or args[0] in ("help", "--help") and len(args) == 1:
        assert "[crm_events]" in done.stdout and "consume_events" in done.stdout  # ours, listed
    elif "produce_events" in args:
        assert "--connect-timeout" in done.stdout
    else:
        assert "usage: manage.py" in done.stdout


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_without_the_secret_key_says_so_in_one_line(command, tmp_path):
    done = manage(command, cwd=tmp_path)
    assert (done.returncode, done.stdout, done.stderr) == (2, "", NO_SECRET + "\n")


@pytest.mark.parametrize("argv", [[WEB, "-p", "0"], [sys.executable, "-m", "crm_events.server", "-p", "0"],
                                  [str(Path(sys.executable).parent / "aetherlink"), "consume_events"]])
def test_the_installed_entry_points_say_so_too(argv, tmp_path):
    done = run(argv, tmp_path)
    program = "aetherlink" if argv[0].endswith("/aetherlink") else "aetherlink-web"
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == NO_SECRET.replace("manage.py", program) + "\n"


def test_the_web_server_help_needs_no_settings(tmp_path):
    done = run([WEB, "--help"], tmp_path)
    assert done.returncode == 0 and done.stdout.startswith("usage: aetherlink-web"), done.stderr


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.sampled_from(NUMERIC), value=INVALID_NUMBERS)
def test_any_invalid_number_stops_every_entry_point_with_one_line(name, value, tmp_path):
    for argv in ([sys.executable, MANAGE, "consume_events"], [WEB, "-p", "0"]):
        done = run(argv, tmp_path, DJANGO_SECRET_KEY="k", **{name: value})
        assert (done.returncode, done.stdout) == (2, ""), done.stderr
        lines = done.stderr.splitlines()
        assert len(lines) == 1 and re.match(rf"^[\w.-]+: configuration error: {name} ", lines[0]), lines


# --- produce_events ---------------------------------------------------------------------------

LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (INFO|WARNING) crm_events\.[\w.]+ ")


class Forwarder:
    """A TCP port, closed until `open()`, then forwarding each connection to `target`: Kafka that
    comes up while a client retries (its metadata then sends the client to the broker itself)."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = free_port()
        self.server: socket.socket | None = None

    def open(self) -> None:
        self.server = socket.create_server(("127.0.0.1", self.port))
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return  # closed
            upstream = socket.create_connection(self.target)
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        if self.server is not None:
            self.server.close()


def test_produce_events_without_kafka_fails_in_one_line_per_attempt(env, tmp_path):
    started = time.monotonic()
    done = run([sys.executable, MANAGE, "produce_events", "--connect-timeout", "3"], ROOT, timeout=30,
               **{**env, "KAFKA_BROKERS": f"127.0.0.1:{free_port()}"})
    assert 3 <= time.monotonic() - started < 15
    lines = done.stderr.splitlines()
    assert done.returncode == 1 and "Traceback" not in done.stderr
    attempts = [line for line in lines if "is unreachable (" in line]
    assert len(attempts) >= 2 and all(LOG_LINE.match(line) and "trying again in" in line for line in attempts)
    assert all("Connect call failed" in line for line in attempts)  # aiokafka's reason, once per line
    assert re.fullmatch(r"CommandError: Kafka at 127\.0\.0\.1:\d+ did not answer within 3s "
                        r"\(--connect-timeout\): .*Connect call failed.*", lines[-1])
    assert len(lines) == len(attempts) + 2  # + the start line and the verdict: nothing else


def test_produce_events_waits_for_kafka_then_reports_progress(env, kafka, topic, tmp_path):
    host, port = kafka.bootstrap.split(":")
    forwarder = Forwarder((host, int(port)))
    variables = {**env, "KAFKA_BROKERS": f"127.0.0.1:{forwarder.port}"}
    argv = [sys.executable, MANAGE, "produce_events", "--count", "30", "--rate", "5",
            "--connect-timeout", "60"]
    with open(tmp_path / "stderr", "w+") as stderr:
        process = subprocess.Popen(argv, cwd=ROOT, env=bare_env(**variables), stdout=subprocess.DEVNULL,
                                   stderr=stderr, text=True)
        try:
            wait_until(lambda: (tmp_path / "stderr").read_text().count("is unreachable") >= 2, timeout=20,
                       what="two attempts")
            forwarder.open()
            assert process.wait(timeout=60) == 0
        finally:
            process.kill()
            forwarder.close()
    lines = (tmp_path / "stderr").read_text().splitlines()
    assert all(LOG_LINE.match(line) for line in lines), lines  # no traceback, no aiokafka noise
    progress = [line for line in lines if re.search(r"INFO crm_events\.ingest\.demo sent \d+/30 ", line)]
    assert progress, lines  # 30 at 5/s: six seconds, so at least one line after five
    assert re.search(rf"done: sent 30/30 events to {topic}, \d+\.\d/s, \d+\.\ds elapsed$", lines[-1])
    records = asyncio.run(log_read(kafka.bootstrap, topic))
    assert len(records) == 30 and all(json.loads(value)["entity"] in LIFECYCLES for value in records.values())


# --- consume_events' status line --------------------------------------------------------------

STATUS = re.compile(r"INFO crm_events\.ingest\.status status: (\d+) records in the last \d+s "
                    r"\((\d+) in total\), \d+\.\d/s, lag (\d+|unknown \(no heartbeat yet\)), "
                    r"web processes: unknown to the consumer")


async def test_consume_events_prints_a_status_line_every_interval(stack, kafka, topic):
    stack.env["CONSUMER_STATUS_INTERVAL"] = "1"
    consumer = stack.consumer()
    wait_until(lambda: "assigned partitions" in consumer.log_text(), timeout=60, what="the assignment")
    await produce(kafka.bootstrap, topic, json_values(20))
    found = wait_until(lambda: [m for m in STATUS.finditer(consumer.log_text()) if m.group(2) == "20"
                                and m.group(3) == "0"] or None, timeout=30, what="a status line with all 20")
    lines = [m.group(1) for m in STATUS.finditer(consumer.log_text())]
    assert sum(int(since) for since in lines) >= 20 and found


# --- smoke through TLS ------------------------------------------------------------------------


def test_smoke_checks_a_stack_behind_nginx_tls(stack, tmp_path):
    from scripts.nginx import Nginx, certificate_make
    from tests.support.tools import nginx_ensure

    tls_dir = certificate_make(tmp_path / "tls")
    https_port, http_port = free_port(), free_port()
    stack.env.update(TRUSTED_PROXIES="127.0.0.1/32", DJANGO_SECURE_PROXY_SSL_HEADER="true")
    stack.consumer()
    _, port = stack.daphne()
    stack.wait_ready(port)
    nginx = Nginx(nginx_ensure(), tmp_path / "nginx", upstreams=[f"127.0.0.1:{port}"],
                  https_port=https_port, http_port=http_port, tls_dir=tls_dir)
    nginx.start()
    stack.add(nginx.process)
    smoke = [sys.executable, MANAGE, "smoke", "--url", nginx.url, "--timeout", "20"]
    refused = run(smoke, ROOT, timeout=60, **stack.env)  # self-signed: verification fails, in one line
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert refused.stderr.strip().startswith("CommandError: FAIL healthz:")
    assert "CERTIFICATE_VERIFY_FAILED" in refused.stderr
    passed = run([*smoke, "--insecure"], ROOT, timeout=120, **stack.env)
    assert passed.returncode == 0, passed.stdout + passed.stderr
    assert "smoke test passed" in passed.stdout and "ok   probe event delivered" in passed.stdout
