"""Real service processes for integration tests: Daphne and `manage.py consume_events`."""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def _poll(condition: Callable[[], Any], deadline: float, timeout: float, what: str) -> Any:
    """One look at `condition`: its result, or an AssertionError once the deadline passed."""
    result = condition()
    if not result and time.monotonic() > deadline:
        raise AssertionError(f"timed out after {timeout}s waiting for {what}")
    return result


def wait_until(condition: Callable[[], Any], *, timeout: float, what: str, every: float = 0.05):
    """Poll `condition` until it returns something truthy; fail with `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    while not (result := _poll(condition, deadline, timeout, what)):
        time.sleep(every)
    return result


class ServiceProcess:
    """A child process with its output in a log file, stopped by its own PID."""

    def __init__(
        self, name: str, args: list[str], env: dict[str, str], log_dir: Path, *, cwd: Path = ROOT,
        pass_fds: tuple[int, ...] = (),
    ) -> None:
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self._log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            args, cwd=cwd, env=env, stdout=self._log, stderr=subprocess.STDOUT,
            start_new_session=True, pass_fds=pass_fds,
        )

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def is_running(self) -> bool:
        return self.process.poll() is None

    def signal(self, signum: int) -> None:
        if self.is_running():
            self.process.send_signal(signum)

    def stop(self, timeout: float = 20) -> int | None:
        self.signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait(timeout)
        finally:
            self._log.close()


def http_get(port: int, path: str, timeout: float = 5.0) -> tuple[int, Any]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        body = response.read()
        try:
            return response.status, json.loads(body)
        except ValueError:
            return response.status, body
    finally:
        connection.close()


def http_status_or_none(port: int, path: str) -> int | None:
    try:
        return http_get(port, path, timeout=2)[0]
    except OSError:
        return None


PLAIN_DAPHNE_APP = ["aetherlink.asgi:application"]


def daphne_start(
    env: dict[str, str], port: int, log_dir: Path, name: str = "daphne", *, cwd: Path = ROOT,
    plain: bool = False, listen_fd: int | None = None, command: list[str] | None = None,
) -> ServiceProcess:
    """The web process of the code in `cwd` (this checkout unless told), answering /healthz on
    `port`: `aetherlink-web` (`python -m crm_events.server`), or `plain` Daphne.

    `listen_fd`: serve a listening socket it inherits (`--fd`), which other processes may
    share, instead of binding `port` itself. `command`: start this instead (an entry script
    such as docker/web.sh, given `port` in its environment), which must end up serving `port`
    the same way.
    """
    server = ["daphne", *PLAIN_DAPHNE_APP] if plain else ["crm_events.server"]
    if command is not None:
        args = command
    elif listen_fd is not None:
        args = [sys.executable, "-m", server[0], "--fd", str(listen_fd), *server[1:]]
    else:
        args = [sys.executable, "-m", server[0], "-b", "127.0.0.1", "-p", str(port), *server[1:]]
    pass_fds = (listen_fd,) if listen_fd is not None else ()
    process = ServiceProcess(name, args, env, log_dir, cwd=cwd, pass_fds=pass_fds)
    try:
        wait_until(
            lambda: http_status_or_none(port, "/healthz") == 200 or not process.is_running(),
            timeout=60, what=f"{name} to answer /healthz",
        )
        assert process.is_running(), process.log_text()
    except BaseException:
        process.stop()  # nobody else holds it yet: a Daphne that never got ready must not outlive the test
        raise
    return process


def consumer_start(
    env: dict[str, str], log_dir: Path, name: str = "consumer", *, cwd: Path = ROOT,
    command: list[str] | None = None,
) -> ServiceProcess:
    """`manage.py consume_events`, or `command` (an entry script such as docker/consumer.sh)."""
    args = command or [sys.executable, "manage.py", "consume_events"]
    return ServiceProcess(name, args, env, log_dir, cwd=cwd)


def service_env(**overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KAFKA_", "REDIS"))}
    env.update(
        DJANGO_SECRET_KEY="integration-test-key",
        DJANGO_DEBUG="false",
        PYTHONUNBUFFERED="1",
        CONSUMER_HEARTBEAT_INTERVAL="0.5",
        READY_HEARTBEAT_MAX_AGE="2",
        KAFKA_RETRY_BACKOFF_MAX="1",
    )
    env.update(overrides)
    return env


async def async_wait_until(condition: Callable[[], Any], *, timeout: float, what: str) -> Any:
    """`wait_until` for async tests: the event loop keeps running (sockets close, clients read)."""
    import asyncio

    deadline = time.monotonic() + timeout
    while not (result := _poll(condition, deadline, timeout, what)):
        await asyncio.sleep(0.05)
    return result
