"""A small supervisor: N copies of one command, each restarted when it dies, SIGTERM passed on.

The rules (docs/production.md "Several workers on one port"):
- A worker that exits while nobody asked it to is logged with why (its exit status or the
  signal that killed it) and started again after a backoff: `backoff_first` seconds, doubled
  for each further death in a row, at most `backoff_max`. A worker that stayed up
  `stable_after` seconds starts the count again (`RestartRules`).
- Workers that keep dying mean they cannot run (a broken release, a resource gone): when one
  worker dies `quick_deaths_max` times in a row, each time within `stable_after` seconds of its
  start, the supervisor stops the others and exits `EXIT_WORKERS_FAILING`.
- SIGTERM or SIGINT to the supervisor: SIGTERM to every worker (each closes its streams with
  their resume ids), no more restarts, and the exit status is 0 once every worker has stopped
  cleanly (status 0, or killed by that SIGTERM before it could handle it), else
  `EXIT_WORKERS_FAILING`. A worker still running `stop_timeout` seconds later is killed.
- Each worker runs in a process group of its own, so a terminal's Ctrl-C reaches the workers
  once, through the supervisor.
"""

from __future__ import annotations

import logging
import os
import select
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import FrameType
from typing import Any

logger = logging.getLogger(__name__)

EXIT_WORKERS_FAILING = 1
CLEAN_STOPS = (0, -signal.SIGTERM, -signal.SIGINT)

WORKER_STARTED = "worker %d started (pid %d)"
WORKER_EXITED = "worker %d (pid %d) exited with status %d"
WORKER_KILLED = "worker %d (pid %d) was killed by signal %s"
WORKER_RESTARTING = "worker %d restarting in %.1fs (death %d in a row within %.0fs of its start)"
WORKERS_FAILING = "worker %d died %d times in a row within %.0fs of its start: stopping all workers"
WORKERS_STOPPING = "stopping %d workers (%s)"
WORKERS_KILLED = "%d workers still running %.0fs after SIGTERM: killing them"


@dataclass(frozen=True, slots=True)
class RestartRules:
    backoff_first: float = 0.5
    backoff_max: float = 30.0
    stable_after: float = 30.0
    quick_deaths_max: int = 5

    def delay(self, quick_deaths: int) -> float:
        """The wait before restarting a worker that just died `quick_deaths` times in a row."""
        return min(self.backoff_max, self.backoff_first * 2 ** max(0, quick_deaths - 1))


@dataclass(slots=True)
class Worker:
    index: int
    process: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    quick_deaths: int = 0  # deaths in a row, each within `stable_after` of its start
    restart_at: float | None = None
    exited: bool = False  # its death has been seen


def death_describe(worker: Worker, pid: int, status: int) -> str:
    if status < 0:
        return WORKER_KILLED % (worker.index, pid, signal.Signals(-status).name)
    return WORKER_EXITED % (worker.index, pid, status)


class Supervisor:
    """Runs `count` workers of `command` until SIGTERM/SIGINT or until they keep dying."""

    def __init__(
        self, command: list[str], count: int, env: dict[str, str], *, stop_timeout: float,
        on_death: Callable[[int], None] = lambda pid: None, rules: RestartRules = RestartRules(),
    ) -> None:
        self.command = command
        self.rules = rules
        self.env = env
        self.stop_timeout = stop_timeout
        self.on_death = on_death
        self.workers = [Worker(index) for index in range(1, count + 1)]
        self.signals: list[int] = []
        self.stop_deadline: float | None = None
        self.failed = False

    def run(self) -> int:
        wakeup, previous = self._signals_catch()
        try:
            for worker in self.workers:
                self._start(worker)
            while not self._stopped():
                self._wait(wakeup)
                self._step()
        finally:
            self._signals_restore(wakeup, previous)
        clean = all(w.process is None or w.process.returncode in CLEAN_STOPS for w in self.workers)
        return 0 if clean and not self.failed else EXIT_WORKERS_FAILING

    def _step(self) -> None:
        while self.signals:
            self._stop(signal.Signals(self.signals.pop(0)).name)
        now = time.monotonic()
        for worker in self.workers:
            if worker.process is not None and not worker.exited and worker.process.poll() is not None:
                self._died(worker, now)
            elif worker.restart_at is not None and worker.restart_at <= now and self.stop_deadline is None:
                self._start(worker)
        if self.stop_deadline is not None and now >= self.stop_deadline:
            self._kill_the_rest()

    def _start(self, worker: Worker) -> None:
        worker.process = subprocess.Popen(self.command, env=self.env, process_group=0)
        worker.started = time.monotonic()
        worker.restart_at = None
        worker.exited = False
        logger.info(WORKER_STARTED, worker.index, worker.process.pid)

    def _died(self, worker: Worker, now: float) -> None:
        assert worker.process is not None
        pid, status = worker.process.pid, worker.process.returncode
        worker.exited = True
        self.on_death(pid)
        if self.stop_deadline is not None:
            return  # stopping: the exit status is read at the end
        logger.warning(death_describe(worker, pid, status))
        rules = self.rules
        worker.quick_deaths = worker.quick_deaths + 1 if now - worker.started < rules.stable_after else 1
        if worker.quick_deaths >= rules.quick_deaths_max:
            logger.error(WORKERS_FAILING, worker.index, worker.quick_deaths, rules.stable_after)
            self.failed = True
            self._stop("workers failing")
            return
        delay = rules.delay(worker.quick_deaths)
        logger.warning(WORKER_RESTARTING, worker.index, delay, worker.quick_deaths, rules.stable_after)
        worker.process = None
        worker.restart_at = now + delay

    def _stop(self, why: str) -> None:
        if self.stop_deadline is not None:
            return  # already passed on once (a second SIGTERM would interrupt Daphne's own stopping)
        running = self._running()
        logger.info(WORKERS_STOPPING, len(running), why)
        for worker in running:
            assert worker.process is not None
            worker.process.send_signal(signal.SIGTERM)
        self.stop_deadline = time.monotonic() + self.stop_timeout
        for worker in self.workers:
            worker.restart_at = None

    def _kill_the_rest(self) -> None:
        running = self._running()
        logger.error(WORKERS_KILLED, len(running), self.stop_timeout)
        for worker in running:
            assert worker.process is not None
            worker.process.kill()
            worker.process.wait()
        self.failed = True

    def _running(self) -> list[Worker]:
        return [w for w in self.workers if w.process is not None and w.process.returncode is None]

    def _stopped(self) -> bool:
        return self.stop_deadline is not None and not self._running()

    def _wait(self, wakeup: int) -> None:
        """Until a signal (a worker's SIGCHLD among them) or the next thing due."""
        due = [w.restart_at for w in self.workers if w.restart_at is not None]
        if self.stop_deadline is not None:
            due.append(self.stop_deadline)
        timeout = max(0.0, min(due) - time.monotonic()) if due else None
        if self.signals:
            return
        readable, _, _ = select.select([wakeup], [], [], timeout)
        if readable:
            os.read(wakeup, 4096)

    def _signals_catch(self) -> tuple[int, dict[int, Any]]:
        read_end, write_end = os.pipe()
        os.set_blocking(write_end, False)
        os.set_blocking(read_end, False)
        self._wakeup_write = write_end
        signal.set_wakeup_fd(write_end)
        previous: dict[int, Any] = {}
        for signum in (signal.SIGTERM, signal.SIGINT):
            previous[signum] = signal.signal(signum, self._signal_received)
        previous[signal.SIGCHLD] = signal.signal(signal.SIGCHLD, lambda signum, frame: None)
        return read_end, previous

    def _signal_received(self, signum: int, frame: FrameType | None) -> None:
        self.signals.append(signum)

    def _signals_restore(self, wakeup: int, previous: dict[int, Any]) -> None:
        signal.set_wakeup_fd(-1)
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        os.close(wakeup)
        os.close(self._wakeup_write)
