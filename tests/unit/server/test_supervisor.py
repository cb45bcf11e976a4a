"""The supervisor's rules, with small Python processes for workers."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path

from crm_events.server.supervisor import (
    EXIT_WORKERS_FAILING,
    WORKERS_FAILING,
    WORKERS_KILLED,
    RestartRules,
    Supervisor,
)

QUICK = RestartRules(backoff_first=0.01, backoff_max=0.05, stable_after=30.0, quick_deaths_max=3)


def python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def pids_in(directory: Path) -> list[int]:
    return sorted(int(path.name) for path in directory.iterdir())


def wait_for(condition, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_restart_delay_doubles_from_the_first_up_to_the_most():
    rules = RestartRules()
    assert [rules.delay(deaths) for deaths in range(1, 9)] == [0.5, 1, 2, 4, 8, 16, 30, 30]


def test_workers_that_keep_dying_stop_the_supervisor_with_a_failure(caplog):
    caplog.set_level(logging.INFO, "crm_events.server.supervisor")
    exits_3 = python("import sys; sys.exit(3)")
    supervisor = Supervisor(exits_3, 2, dict(os.environ), stop_timeout=5, rules=QUICK)
    assert supervisor.run() == EXIT_WORKERS_FAILING
    messages = [record.getMessage() for record in caplog.records]
    exits = [m for m in messages if m.startswith("worker ") and m.endswith("exited with status 3")]
    assert len(exits) >= QUICK.quick_deaths_max
    failing = WORKERS_FAILING % (1, 3, 30.0)
    assert failing in messages or WORKERS_FAILING % (2, 3, 30.0) in messages
    assert "worker 1 restarting in 0.0s (death 2 in a row within 30s of its start)" in messages


def test_a_killed_worker_is_restarted_and_sigterm_stops_every_worker_cleanly(tmp_path, caplog):
    caplog.set_level(logging.INFO, "crm_events.server.supervisor")
    code = (f"import os, time; open(os.path.join({str(tmp_path)!r}, str(os.getpid())), 'w').close(); "
            "time.sleep(60)")
    supervisor = Supervisor(python(code), 2, dict(os.environ), stop_timeout=10, rules=QUICK)
    victims: list[int] = []

    def drive() -> None:
        wait_for(lambda: len(pids_in(tmp_path)) == 2)
        victims.append(pids_in(tmp_path)[0])
        os.kill(victims[0], signal.SIGKILL)
        wait_for(lambda: len(pids_in(tmp_path)) == 3)  # its replacement
        os.kill(os.getpid(), signal.SIGTERM)  # to the supervisor: it runs in this test's process

    driver = threading.Thread(target=drive)
    driver.start()
    assert supervisor.run() == 0  # the workers died of the SIGTERM passed on: a clean stop
    driver.join()
    messages = [record.getMessage() for record in caplog.records]
    assert any(m.endswith(f"(pid {victims[0]}) was killed by signal SIGKILL") for m in messages), messages
    assert "stopping 2 workers (SIGTERM)" in messages
    assert all(process_gone(pid) for pid in pids_in(tmp_path))


def test_a_worker_that_ignores_sigterm_is_killed_after_the_stop_timeout(tmp_path, caplog):
    caplog.set_level(logging.INFO, "crm_events.server.supervisor")
    code = (f"import os, signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
            f"open(os.path.join({str(tmp_path)!r}, str(os.getpid())), 'w').close(); time.sleep(60)")
    supervisor = Supervisor(python(code), 1, dict(os.environ), stop_timeout=0.5, rules=QUICK)
    driver = threading.Thread(
        target=lambda: (wait_for(lambda: len(pids_in(tmp_path)) == 1), os.kill(os.getpid(), signal.SIGTERM)))
    driver.start()
    assert supervisor.run() == EXIT_WORKERS_FAILING
    driver.join()
    assert WORKERS_KILLED % (1, 0.5) in [record.getMessage() for record in caplog.records]
    assert process_gone(pids_in(tmp_path)[0])


def process_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False
