"""Child processes with a deadline on every wait, for the tests and the benchmark alike.

`ServiceProcess` runs one child in its own session with its output in a log file and stops
it by its own PID; `wait_until` polls a condition until a deadline; `http_get` asks a local
port. Standard library only.
"""

from __future__ import annotations

import http.client
import json
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def poll_until(condition: Callable[[], Any], *, timeout: float, every: float = 0.05) -> bool:
    """Poll `condition` until it is truthy (True) or `timeout` passed (False); never raises."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            return False
        time.sleep(every)
    return True


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


async def async_wait_until(condition: Callable[[], Any], *, timeout: float, what: str) -> Any:
    """`wait_until` for async code: the event loop keeps running (sockets close, clients read)."""
    import asyncio

    deadline = time.monotonic() + timeout
    # Another process's state, polled: there is no event to wait on.
    while not (result := _poll(condition, deadline, timeout, what)):  # noqa: ASYNC110
        await asyncio.sleep(0.05)
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
