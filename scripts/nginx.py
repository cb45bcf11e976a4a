"""The real nginx in front of local web processes, running `docker/nginx.conf` itself
(tests/integration/test_nginx.py, and the benchmark's nginx mode).

Only what the file's header says to edit is replaced, by plain text: the upstream `server`
lines, the two `listen` lines and the certificate folder. The rest of the file is used as
shipped, inside a minimal main configuration that keeps every path (pid, logs, temp files)
in a folder of the caller's, so nginx runs as a plain child process on loopback ports.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

from scripts.processes import ROOT, ServiceProcess, wait_until

NGINX_CONF = ROOT / "docker" / "nginx.conf"
UPSTREAM_SERVER = re.compile(r"^(\s*)server web-\d+:9010( [^;]*)?;\n", re.MULTILINE)
# The access log says which web process served each request, and how long nginx waited for it.
LOG_FORMAT = '$remote_addr "$request" $status $server_protocol upstream=$upstream_addr'
NOT_FOUND = "nginx is not installed: `make tools` installs Debian's nginx-light (apt-get install nginx-light)"

MAIN = """\
{user}pid {dir}/nginx.pid;
error_log {dir}/error.log info;
daemon off;
worker_processes {workers};
events {{ worker_connections {connections}; }}
http {{
    log_format aetherlink '{log_format}';
    access_log {access_log};
    client_body_temp_path {dir}/client_body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    include {site};
}}
"""


def nginx_find() -> str:
    """The nginx binary (Debian puts it in /usr/sbin, often not on a user's PATH)."""
    found = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin")
    if found is None:
        raise RuntimeError(NOT_FOUND)
    return found


def certificate_make(folder: Path) -> Path:
    """A throwaway certificate for 127.0.0.1 in `folder`, made by docker/tls-selfsigned.sh."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
           "TLS_DIR": str(folder), "TLS_HOSTNAMES": "127.0.0.1,localhost", "TLS_DAYS": "2"}
    done = subprocess.run(["bash", str(ROOT / "docker" / "tls-selfsigned.sh")], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"docker/tls-selfsigned.sh failed ({done.returncode}): {done.stderr[-2000:]}")
    return folder


def site_config(*, upstreams: list[str], https_port: int, http_port: int, tls_dir: Path,
                tls: bool = True) -> str:
    """docker/nginx.conf with only the documented lines replaced (each must be found).

    `tls=False`: the file's https server listens for plain HTTP/1.1 instead (everything else in
    it unchanged, the certificate still loaded), for load clients that would spend more CPU on
    TLS than the server they measure.
    """
    text = NGINX_CONF.read_text()
    shipped = UPSTREAM_SERVER.findall(text)
    assert len(shipped) >= 2, "docker/nginx.conf should list several web processes"
    indent, options = shipped[0]
    lines = "".join(f"{indent}server {address}{options};\n" for address in upstreams)
    text = UPSTREAM_SERVER.sub("", text, count=len(shipped) - 1)
    text = UPSTREAM_SERVER.sub(lines.replace("\\", "\\\\"), text, count=1)
    main_listen = f"listen 127.0.0.1:{https_port} ssl http2;" if tls else f"listen 127.0.0.1:{https_port};"
    for old, new in (
        ("listen 443 ssl http2;", main_listen),
        ("listen 80;", f"listen 127.0.0.1:{http_port};"),
        ("/etc/nginx/tls/", f"{tls_dir}/"),
    ):
        assert old in text, f"docker/nginx.conf no longer has {old!r}: update the replacements"
        text = text.replace(old, new)
    return text


class Nginx:
    """nginx with `docker/nginx.conf` in front of `upstreams`, as a child process.

    `https_port` is where the file's main server listens: TLS with HTTP/2 as shipped, or plain
    HTTP/1.1 with `tls=False`; `http_port` gets the file's redirect to https. `connections` per
    worker: a proxied stream takes two (the client's and the one to its web process).
    `worker_processes`: 1, or "auto" (one per core, the official nginx image's default).
    """

    def __init__(self, binary: str, folder: Path, *, upstreams: list[str], https_port: int,
                 http_port: int, tls_dir: Path, tls: bool = True, access_log: bool = True,
                 connections: int = 1024, worker_processes: int | str = 1) -> None:
        self.binary, self.folder, self.tls = binary, folder, tls
        self.https_port, self.http_port = https_port, http_port
        folder.mkdir(parents=True, exist_ok=True)
        site = folder / "aetherlink.conf"
        site.write_text(site_config(upstreams=upstreams, https_port=https_port, http_port=http_port,
                                    tls_dir=tls_dir, tls=tls))
        self.main = folder / "nginx.conf"
        # As root, nginx's workers would switch to `nobody`, who cannot enter the caller's folder.
        user = "user root;\n" if os.geteuid() == 0 else ""
        log = f"{folder}/access.log aetherlink" if access_log else "off"
        self.main.write_text(MAIN.format(user=user, dir=folder, site=site, log_format=LOG_FORMAT,
                                         access_log=log, connections=connections,
                                         workers=worker_processes))
        self.process: ServiceProcess | None = None

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.https_port}"

    def test_config(self) -> subprocess.CompletedProcess:
        return subprocess.run([self.binary, "-t", "-p", str(self.folder), "-c", str(self.main)],
                              capture_output=True, text=True, timeout=30, check=False)

    def start(self) -> Nginx:
        checked = self.test_config()
        if checked.returncode != 0:
            raise RuntimeError(f"nginx -t failed: {checked.stderr}")
        argv = [self.binary, "-p", str(self.folder), "-c", str(self.main)]
        self.process = process = ServiceProcess("nginx", argv, dict(os.environ), self.folder)
        wait_until(lambda: self._listening() or not process.is_running(), timeout=20,
                   what="nginx to listen")
        if not process.is_running():
            raise RuntimeError(f"nginx exited: {self.error_log()[-2000:]}")
        return self

    def _listening(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.https_port), timeout=1):
                return True
        except OSError:
            return False

    def worker_pids(self) -> list[int]:
        """The worker processes (they serve the connections; the master only watches them)."""
        if self.process is None:
            return []
        pid = self.process.process.pid
        try:
            return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
        except OSError:
            return []

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop(timeout=10)  # SIGTERM: nginx's fast shutdown

    def error_log(self) -> str:
        path = self.folder / "error.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def access_log(self) -> list[str]:
        path = self.folder / "access.log"
        return path.read_text(errors="replace").splitlines() if path.exists() else []
