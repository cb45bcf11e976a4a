"""Real service processes for integration tests: Daphne and `manage.py consume_events`.

The process helpers themselves (`ServiceProcess`, `wait_until`, `http_get`, ...) live in
scripts/processes.py, which the benchmark uses too; they are re-exported here.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from scripts.processes import (
    ROOT,
    ServiceProcess,
    async_wait_until,
    http_get,
    http_status_or_none,
    wait_until,
)

__all__ = [
    "ROOT", "ServiceProcess", "async_wait_until", "consumer_start", "daphne_start", "http_get",
    "http_status_or_none", "service_env", "wait_until",
]


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
