"""One supervised server process, found again through its PID file from any Python process."""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from scripts.processes import poll_until
from scripts.servers.base import (
    KILL_WAIT_SECONDS,
    LOG_TAIL_LINES,
    POLL_SECONDS,
    pid_alive,
    pid_matches,
    pid_read,
)

logger = logging.getLogger(__name__)


@dataclass
class ServerProcess:
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
        recorded = pid_read(self.pid_file)
        if recorded is not None and pid_matches(recorded, self.markers):
            return recorded
        return None

    def spawn(self, argv: Sequence[str]) -> None:
        """Launch in a new session, so it outlives the CLI and a Ctrl-C of `make dev` misses it."""
        with self.log_file.open("ab") as log:
            log.write(f"=== scripts.servers: starting {self.name} at {time.ctime()} ===\n".encode())
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
            time.sleep(POLL_SECONDS)

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
            self._wait_gone(pid, KILL_WAIT_SECONDS)
        self.pid_file.unlink(missing_ok=True)

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
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
        return poll_until(lambda: not pid_alive(pid), timeout=timeout, every=POLL_SECONDS)

    def _exit_code(self) -> int | str:
        code = self._popen.poll() if self._popen is not None else None
        return "unknown" if code is None else code

    def _failure(self, what: str) -> str:
        return f"{self.name} {what}; last {LOG_TAIL_LINES} lines of {self.log_file}:\n{self.log_tail()}"




class ProcessBacked:
    """What a server knows of the process that runs it: its PID, its log, whether it runs."""

    _process: ServerProcess

    @property
    def pid(self) -> int | None:
        return self._process.pid()

    @property
    def log_file(self) -> Path:
        return self._process.log_file

    def is_running(self) -> bool:
        return self.pid is not None
