"""A real Redis Sentinel (Debian's redis-server in sentinel mode: the redis-sentinel package only adds
a service around the same binary) as a plain loopback process.

Sentinel rewrites its configuration file as it learns (the other sentinels, the replicas, a
promotion), so each one keeps its own file in its data directory.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from scripts.servers.base import LOOPBACK, port_ensure_free
from scripts.servers.process import ProcessBacked, ServerProcess
from scripts.servers.redis import TlsFiles, redis_ping, redis_server_binary

logger = logging.getLogger(__name__)


@dataclass
class SentinelServer(ProcessBacked):
    """One sentinel watching the master `master_name` on 127.0.0.1:`master_port`.

    `down_after_ms` is how long the master may not answer before this sentinel thinks it down;
    `failover_timeout_ms` bounds a failover (and how soon another is tried). `master_password`
    is the master's (and its replicas'); `password` is the sentinels' own. With `tls`, the
    sentinel speaks TLS only, to its clients and to the servers and sentinels it talks to.
    """

    port: int
    data_dir: Path
    master_name: str
    master_port: int
    quorum: int = 2
    down_after_ms: int = 1000
    failover_timeout_ms: int = 5000
    master_password: str = ""
    password: str = ""
    tls: TlsFiles | None = None
    _process: ServerProcess = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.data_dir = Path(self.data_dir).resolve()
        self._process = ServerProcess("sentinel", self.data_dir, ("redis-server", str(self.config_file)))

    @property
    def config_file(self) -> Path:
        return self.data_dir / "sentinel.conf"

    def ready(self) -> bool:
        return redis_ping(self.port, self.password, tls=self.tls)

    def start(self, timeout: float = 30) -> None:
        if not self.is_running():
            port_ensure_free(self.port)
            self.data_dir.mkdir(parents=True, exist_ok=True)
            self.config_file.write_text(self._config())
            self._process.spawn([redis_server_binary(), str(self.config_file), "--sentinel"])
        self._process.wait_ready(self.ready, timeout)
        logger.info("Redis Sentinel ready on %s:%s (pid %s)", LOOPBACK, self.port, self.pid)

    def stop(self, timeout: float = 10) -> None:
        self._process.stop(timeout)

    def _config(self) -> str:
        name = self.master_name
        ports = ["port 0", f"tls-port {self.port}"] if self.tls else [f"port {self.port}"]
        lines = [
            *ports,
            *(f"{name} {value}" for name, value in (self.tls.server_options() if self.tls else {}).items()),
            f"bind {LOOPBACK}",
            f"dir {self.data_dir}",
            "set-proc-title no",
            f"sentinel monitor {name} {LOOPBACK} {self.master_port} {self.quorum}",
            f"sentinel down-after-milliseconds {name} {self.down_after_ms}",
            f"sentinel failover-timeout {name} {self.failover_timeout_ms}",
            f"sentinel parallel-syncs {name} 1",
        ]
        if self.master_password:
            lines.append(f"sentinel auth-pass {name} {self.master_password}")
        if self.password:
            lines += [f"requirepass {self.password}", f"sentinel sentinel-pass {self.password}"]
        return "\n".join(lines) + "\n"
