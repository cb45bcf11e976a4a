"""`aetherlink-web --workers N`: N web processes on one address, under a supervisor (supervisor.py).

Each worker is `aetherlink-web` itself with `--workers 1 --reuse-port` and the same options:
it binds the address with `SO_REUSEPORT` (reuse_port.py), so the kernel spreads connections
evenly over the workers and a worker that dies stops receiving them at once; each has its own
hub, its own stream slots and limits. The supervisor process itself holds the address bound,
without listening (it takes no connections): the port stays reserved for this user while a
worker restarts, and an address already taken fails here, once, before any worker starts.

Metrics: every worker runs in prometheus_client's multiprocess mode, writing to one directory
(`PROMETHEUS_MULTIPROC_DIR` when set, else a temporary one this process removes at exit), so
the `/metrics` any worker answers adds up the whole host (crm_events/ops/metrics_view.py).
The live gauges of a worker that died are dropped here, its counters stay counted.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import tempfile
from pathlib import Path

import django
from prometheus_client import multiprocess

from crm_events.config import metrics_config, stream_config
from crm_events.exceptions import WorkersError
from crm_events.server.reuse_port import reuse_port_socket
from crm_events.server.supervisor import Supervisor

logger = logging.getLogger(__name__)

WORKERS_COUNT_INVALID = "--workers must be a positive number of web processes or auto, got {text!r}"
WORKERS_BINDING = "--workers N serves one -b/-p address; it cannot take -u, --fd or -e"
WORKERS_PORT_ZERO = "--workers N needs a port number (-p): with 0 each worker would get a port of its own"
WORKERS_ADDRESS_TAKEN = "--workers N cannot bind {host}:{port}: {error}"
WORKERS_STARTING = "starting %d workers on %s:%d (SO_REUSEPORT), metrics from %s"
STOP_MARGIN = 15.0  # seconds past SSE_SHUTDOWN_GRACE for Daphne to stop what is left
DEFAULT_HOST = "127.0.0.1"  # Daphne's, for -p without -b
DEFAULT_PORT = 8000  # Daphne's, for no binding option at all
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def workers_count_parse(text: str) -> int:
    """A positive number, or `auto`: the cores this process may run on."""
    if text.strip() == "auto":
        return len(os.sched_getaffinity(0))
    if not text.strip().isdigit() or int(text) < 1:
        raise ValueError(WORKERS_COUNT_INVALID.format(text=text))
    return int(text)


def workers_address(parsed: argparse.Namespace) -> tuple[str, int]:
    if parsed.unix_socket or parsed.file_descriptor is not None or parsed.socket_strings:
        raise WorkersError(WORKERS_BINDING)
    host = (parsed.host or DEFAULT_HOST).strip("[]")
    port = DEFAULT_PORT if parsed.port is None else parsed.port
    if port == 0:
        raise WorkersError(WORKERS_PORT_ZERO)
    return host, port


def worker_command(args: list[str]) -> list[str]:
    """This command again, for one worker: `args` ends with the application Daphne was given."""
    return [sys.executable, "-m", "crm_events.server", *args[:-1], "--workers", "1", "--reuse-port"]


def metrics_dir_prepare() -> tuple[Path, bool]:
    """The multiprocess directory, emptied of an earlier run's files; True when made here."""
    configured = metrics_config().multiprocess_dir
    if not configured:
        return Path(tempfile.mkdtemp(prefix="aetherlink-metrics-")), True
    directory = Path(configured)
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob("*.db"):
        stale.unlink()
    return directory, False


def workers_run(parsed: argparse.Namespace, args: list[str], count: int) -> int:
    """Run `count` workers until SIGTERM; the supervisor's exit status."""
    django.setup(set_prefix=False)  # the settings' logging, for the supervisor's lines
    host, port = workers_address(parsed)
    try:
        reservation = reuse_port_socket(host, port)
    except OSError as error:
        raise WorkersError(WORKERS_ADDRESS_TAKEN.format(host=host, port=port, error=error)) from None
    directory, made_here = metrics_dir_prepare()
    logger.info(WORKERS_STARTING, count, host, port, directory)
    supervisor = Supervisor(
        worker_command(args), count, {**os.environ, MULTIPROC_ENV: str(directory)},
        stop_timeout=stream_config().shutdown_grace + STOP_MARGIN,
        on_death=lambda pid: multiprocess.mark_process_dead(pid, str(directory)),
    )
    try:
        return supervisor.run()
    finally:
        reservation.close()
        if made_here:
            shutil.rmtree(directory, ignore_errors=True)
