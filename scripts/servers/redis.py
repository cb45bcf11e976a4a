"""A real throwaway Redis (Debian's redis-server) as a plain loopback process."""

from __future__ import annotations

import logging
import os
import shutil
import socket
import ssl
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


@dataclass(frozen=True)
class TlsFiles:
    """A server's certificate and key, and the CA its peers' certificates are checked against."""

    cert: Path
    key: Path
    ca: Path

    def server_options(self) -> dict[str, str]:
        """Redis's (and Sentinel's) TLS directives: clients need no certificate; replication
        and a sentinel's own connections speak TLS too."""
        return {
            "tls-cert-file": str(self.cert), "tls-key-file": str(self.key), "tls-ca-cert-file": str(self.ca),
            "tls-auth-clients": "no", "tls-replication": "yes",
        }


@dataclass
class RedisServer(ProcessBacked):
    """A throwaway Redis on 127.0.0.1: no persistence, output in data_dir/redis.log.

    `maxmemory` (bytes; 0: no limit) makes a Redis with little room that refuses writes past it
    (`noeviction`), as a production Redis shared with other data may. `password` is asked of
    clients and given to a master; `replica_of` (a port on 127.0.0.1) starts it as that one's replica.
    With `tls`, `port` speaks TLS only.
    """

    port: int
    data_dir: Path
    maxmemory: int = 0
    password: str = ""
    replica_of: int = 0
    tls: TlsFiles | None = None
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
        """True if the server answers PING (no client library needed)."""
        return redis_ping(self.port, self.password, tls=self.tls)

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
        password = ["--requirepass", self.password, "--masterauth", self.password]
        replica = ["--replicaof", LOOPBACK, str(self.replica_of)]
        ports = ["--port", "0", "--tls-port", str(self.port)] if self.tls else ["--port", str(self.port)]
        tls_options = self.tls.server_options() if self.tls else {}
        tls = [arg for name, value in tls_options.items() for arg in (f"--{name}", value)]
        return [
            redis_server_binary(),
            *ports,
            *tls,
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
            # A replica's first sync starts at once, not after the default 5 s wait for others.
            "--repl-diskless-sync-delay",
            "0",
            *(limit if self.maxmemory else []),
            *(password if self.password else []),
            *(replica if self.replica_of else []),
        ]


def resp_command(*args: str) -> bytes:
    """One command in the Redis protocol (any bytes in an argument, unlike the inline form)."""
    encoded = [arg.encode() for arg in args]
    return f"*{len(encoded)}\r\n".encode() + b"".join(
        b"$%d\r\n%s\r\n" % (len(arg), arg) for arg in encoded
    )


def redis_ping(port: int, password: str = "", *, tls: TlsFiles | None = None) -> bool:
    """True if the Redis (or sentinel) on `port` answers PING, after AUTH when it has a password."""
    request = (resp_command("AUTH", password) if password else b"") + resp_command("PING")
    try:
        with _connected(port, tls) as sock:
            sock.sendall(request)
            answer = b""
            while answer.count(b"\r\n") < (2 if password else 1):
                chunk = sock.recv(256)
                if not chunk:
                    return False
                answer += chunk
            return answer.endswith(b"+PONG\r\n") and b"-" not in answer[:1]
    except OSError:
        return False




def _connected(port: int, tls: TlsFiles | None) -> socket.socket:
    sock = socket.create_connection((LOOPBACK, port), timeout=1.0)
    if tls is None:
        return sock
    # A failed handshake closes the socket it wrapped.
    return ssl.create_default_context(cafile=tls.ca).wrap_socket(sock, server_hostname=LOOPBACK)
