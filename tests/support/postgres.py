"""A real PostgreSQL as a plain process, for the tests that share a database between web processes.

`initdb` into a fresh directory, then `postgres` on a free port on 127.0.0.1 (its Unix socket
in the same directory), trust authentication (only this machine's loopback reaches it), fsync
off (a test database need not survive a power cut). As root, the server runs as Debian's
`postgres` user, since initdb refuses root; the directory is then outside pytest's private
tmp (which that user could not enter), and removed at stop.
"""

from __future__ import annotations

import ipaddress
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

import psycopg

from scripts.servers import LOOPBACK, free_port
from tests.support.processes import ServiceProcess, wait_until
from tests.support.tools import postgres_ensure

SUPERUSER = "aetherlink"
SERVER_USER = "postgres"  # made by Debian's package; used only when we are root


class PostgresServer:
    """`host`: another address of this machine to listen on as well (a bridge's, for pods in
    network namespaces), trusted from its /24 as loopback is."""

    def __init__(self, log_dir: Path, *, host: str = LOOPBACK) -> None:
        self.bindir = postgres_ensure()
        self.log_dir = log_dir
        self.host = host
        self.port = free_port()
        self.data_dir = Path(tempfile.mkdtemp(prefix="aetherlink-pg-"))
        self.process: ServiceProcess | None = None

    def _as_server_user(self, argv: list[str]) -> list[str]:
        if os.geteuid() != 0:
            return argv
        return ["setpriv", f"--reuid={SERVER_USER}", f"--regid={SERVER_USER}", "--init-groups", "--", *argv]

    def start(self) -> None:
        if os.geteuid() == 0:
            user = pwd.getpwnam(SERVER_USER)
            os.chown(self.data_dir, user.pw_uid, user.pw_gid)
        pgdata = self.data_dir / "data"
        subprocess.run(
            self._as_server_user([str(self.bindir / "initdb"), "-D", str(pgdata), "-U", SUPERUSER,
                                  "--auth=trust", "--encoding=UTF8", "--no-sync"]),
            check=True, capture_output=True, timeout=120,
        )
        if self.host != LOOPBACK:
            network = ipaddress.ip_network(f"{self.host}/24", strict=False)
            with (pgdata / "pg_hba.conf").open("a") as hba:
                hba.write(f"host all all {network} trust\n")
        listen = LOOPBACK if self.host == LOOPBACK else f"{LOOPBACK},{self.host}"
        self.process = ServiceProcess("postgres", self._as_server_user([
            str(self.bindir / "postgres"), "-D", str(pgdata), "-p", str(self.port), "-k", str(self.data_dir),
            "-c", f"listen_addresses={listen}", "-c", "fsync=off", "-c", "max_connections=200",
        ]), dict(os.environ), self.log_dir)
        wait_until(lambda: self._accepts() or not self.process.is_running(), timeout=60, what="PostgreSQL")
        assert self.process.is_running(), self.process.log_text()

    def _accepts(self) -> bool:
        try:
            with psycopg.connect(self.url("postgres"), connect_timeout=2):
                return True
        except psycopg.OperationalError:
            return False

    def url(self, database: str) -> str:
        return f"postgres://{SUPERUSER}@{self.host}:{self.port}/{database}"

    def database_create(self, name: str) -> str:
        """A new, empty database; its URL (DATABASE_URL)."""
        with psycopg.connect(self.url("postgres"), autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def backends(self, database: str) -> int:
        """Client connections now open to `database` (pg_stat_activity), this one not counted."""
        with psycopg.connect(self.url("postgres")) as connection:
            row = connection.execute(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE datname = %s AND backend_type = 'client backend'",
                (database,),
            ).fetchone()
        return int(row[0]) if row else 0

    def stop(self) -> None:
        if self.process is not None:
            self.process.signal(signal.SIGINT)  # fast shutdown: clients are disconnected
            self.process.stop()
        shutil.rmtree(self.data_dir, ignore_errors=True)
