"""A real throwaway Redis (Debian's redis-server) as a plain loopback process."""

from __future__ import annotations

import logging
import os
import shutil
import socket
from dataclasses import dataclass, field
from pathlib import Path

from scripts.servers.base import LOOPBACK, REDIS_MISSING, port_ensure_free, run_checked
from scripts.servers.process import ProcessBacked, ServerProcess

logger = logging.getLogger(__name__)


def redis_server_binary() -> str:
    """Path of redis-server, installing Debian's package first when missing and we are root."""
    found = shutil.which("redis-server")
    if found:
        return found
    if os.geteuid() != 0:
        raise RuntimeError(REDIS_MISSING)
    logger.info("redis-server not found; installing Debian's redis-server package with apt-get")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    wait_for_dpkg = ["-o", "DPkg::Lock::Timeout=300"]  # parallel CI jobs share one dpkg lock
    run_checked(["apt-get", *wait_for_dpkg, "update"], what="apt-get update", env=env)
    run_checked(
        ["apt-get", *wait_for_dpkg, "install", "-y", "redis-server"],
        what="apt-get install redis-server",
        env=env,
    )
    found = shutil.which("redis-server")
    if found is None:
        raise RuntimeError("apt-get installed redis-server but it is not on PATH")
    return found


@dataclass
class RedisServer(ProcessBacked):
    """A throwaway Redis on 127.0.0.1: no persistence, output in data_dir/redis.log.

    `maxmemory` (bytes; 0: no limit) makes a Redis with little room that refuses writes past it
    (`noeviction`), as a production Redis shared with other data may.
    """

    port: int
    data_dir: Path
    maxmemory: int = 0
    # Where clients reach it: another address of this machine (a bridge's, for pods in network
    # namespaces) is listened on as well as loopback.
    host: str = LOOPBACK
    _process: ServerProcess = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.data_dir = Path(self.data_dir).resolve()
        # --set-proc-title no keeps the argv (with --dir) in /proc, which is how a PID is recognised.
        self._process = ServerProcess("redis", self.data_dir, ("redis-server", f"--dir {self.data_dir} "))

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    def ready(self) -> bool:
        """True if the server answers PING (inline protocol, no client library needed)."""
        try:
            with socket.create_connection((LOOPBACK, self.port), timeout=1.0) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    def start(self, timeout: float = 30) -> None:
        """Start Redis unless it already runs; return once it answers PING."""
        if not self.is_running():
            port_ensure_free(self.port)
            self.data_dir.mkdir(parents=True, exist_ok=True)
            self._process.spawn(self._argv())
        self._process.wait_ready(self.ready, timeout)
        logger.info("Redis ready on %s (pid %s)", self.url, self.pid)

    def stop(self, timeout: float = 10) -> None:
        """Stop by SIGTERM to its own PID (SIGKILL after timeout); a no-op if it is not running."""
        self._process.stop(timeout)

    def kill(self) -> None:
        """SIGKILL, for fault tests."""
        self._process.kill()

    def _argv(self) -> list[str]:
        limit = ["--maxmemory", str(self.maxmemory), "--maxmemory-policy", "noeviction"]
        return [
            redis_server_binary(),
            "--port",
            str(self.port),
            "--bind",
            LOOPBACK,
            # Beyond loopback, protected mode would refuse every client: this Redis has no password.
            *([self.host, "--protected-mode", "no"] if self.host != LOOPBACK else []),
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self.data_dir),
            "--daemonize",
            "no",
            "--set-proc-title",
            "no",
            *(limit if self.maxmemory else []),
        ]


