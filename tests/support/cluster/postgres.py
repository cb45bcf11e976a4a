"""A throwaway PostgreSQL (Debian's server binaries) for the pods' shared database.

PostgreSQL refuses to run as root, so as root it runs as the `postgres` user, in a folder of its
own under the system's temporary directory (the test's own folders are closed to other users).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from scripts.processes import ServiceProcess, wait_until

PG_MISSING = "PostgreSQL's server binaries (initdb, postgres) are missing: apt-get install -y postgresql"
USER = "postgres"


def _binary(name: str) -> str:
    found = shutil.which(name) or next(iter(sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))), None)
    if found is None:
        raise RuntimeError(PG_MISSING)
    return str(found)


class PostgresServer:
    """PostgreSQL on `host`:`port` with database `crm` owned by user `crm` (password `crm`)."""

    def __init__(self, host: str, port: int, log_dir: Path) -> None:
        self.host, self.port, self.log_dir = host, port, log_dir
        self.folder = Path(tempfile.mkdtemp(prefix="aetherlink-pg-"))
        self.process: ServiceProcess | None = None

    @property
    def url(self) -> str:
        return f"postgres://crm:crm@{self.host}:{self.port}/crm"

    def _as_owner(self, argv: list[str]) -> list[str]:
        return ["runuser", "-u", USER, "--", *argv] if os.geteuid() == 0 else argv

    def start(self) -> PostgresServer:
        data = self.folder / "data"
        if os.geteuid() == 0:
            shutil.chown(self.folder, USER)
        subprocess.run(self._as_owner([_binary("initdb"), "-D", str(data), "-U", USER, "--auth=trust",
                                       "--no-sync"]), check=True, capture_output=True, timeout=120)
        with (data / "pg_hba.conf").open("a") as hba:  # the pods, with the password
            hba.write("host all all 10.0.0.0/8 scram-sha-256\n")
        argv = [_binary("postgres"), "-D", str(data), "-h", f"127.0.0.1,{self.host}", "-p", str(self.port),
                "-k", str(self.folder), "-c", "fsync=off", "-c", "max_connections=200"]
        self.process = ServiceProcess("postgres", self._as_owner(argv), dict(os.environ), self.log_dir)
        wait_until(self._accepting, timeout=60, what="PostgreSQL to accept connections")
        self._psql("CREATE ROLE crm LOGIN PASSWORD 'crm'", "CREATE DATABASE crm OWNER crm")
        return self

    def _accepting(self) -> bool:
        argv = [_binary("pg_isready"), "-h", "127.0.0.1", "-p", str(self.port)]
        done = subprocess.run(self._as_owner(argv), capture_output=True, timeout=10, check=False)
        return done.returncode == 0

    def _psql(self, *statements: str) -> None:
        for statement in statements:
            argv = [_binary("psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", USER, "-d", "postgres",
                    "-c", statement]
            subprocess.run(self._as_owner(argv), check=True, capture_output=True, timeout=30)

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop(timeout=20)
        shutil.rmtree(self.folder, ignore_errors=True)
