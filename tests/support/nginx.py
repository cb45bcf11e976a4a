"""The real nginx in front of test web processes, running `docker/nginx.conf` itself.

Only what the file's header says to edit is replaced, by plain text: the upstream `server`
lines, the two `listen` lines and the certificate folder. The rest of the file is used as
shipped, inside a minimal main configuration that keeps every path (pid, logs, temp files)
in the test's own folder, so nginx runs as a plain child process on loopback ports.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from tests.support.processes import ROOT, ServiceProcess, wait_until

NGINX_CONF = ROOT / "docker" / "nginx.conf"
UPSTREAM_SERVER = re.compile(r"^(\s*)server web-\d+:9010( [^;]*)?;\n", re.MULTILINE)
# The access log says which web process served each request, and how long nginx waited for it.
LOG_FORMAT = '$remote_addr "$request" $status $server_protocol upstream=$upstream_addr'

MAIN = """\
{user}pid {dir}/nginx.pid;
error_log {dir}/error.log info;
daemon off;
worker_processes 1;
events {{ worker_connections 1024; }}
http {{
    log_format aetherlink '{log_format}';
    access_log {dir}/access.log aetherlink;
    client_body_temp_path {dir}/client_body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    include {site};
}}
"""


def site_config(*, upstreams: list[str], https_port: int, http_port: int, tls_dir: Path) -> str:
    """docker/nginx.conf with only the documented lines replaced (each must be found)."""
    text = NGINX_CONF.read_text()
    shipped = UPSTREAM_SERVER.findall(text)
    assert len(shipped) >= 2, "docker/nginx.conf should list several web processes"
    indent, options = shipped[0]
    lines = "".join(f"{indent}server {address}{options};\n" for address in upstreams)
    text = UPSTREAM_SERVER.sub("", text, count=len(shipped) - 1)
    text = UPSTREAM_SERVER.sub(lines.replace("\\", "\\\\"), text, count=1)
    for old, new in (
        ("listen 443 ssl http2;", f"listen 127.0.0.1:{https_port} ssl http2;"),
        ("listen 80;", f"listen 127.0.0.1:{http_port};"),
        ("/etc/nginx/tls/", f"{tls_dir}/"),
    ):
        assert old in text, f"docker/nginx.conf no longer has {old!r}: update the test's replacements"
        text = text.replace(old, new)
    return text


class Nginx:
    """nginx with `docker/nginx.conf` in front of `upstreams`, as a child process."""

    def __init__(self, binary: str, folder: Path, *, upstreams: list[str], https_port: int,
                 http_port: int, tls_dir: Path) -> None:
        self.binary, self.folder = binary, folder
        self.https_port, self.http_port = https_port, http_port
        folder.mkdir(parents=True, exist_ok=True)
        site = folder / "aetherlink.conf"
        site.write_text(site_config(upstreams=upstreams, https_port=https_port, http_port=http_port,
                                    tls_dir=tls_dir))
        self.main = folder / "nginx.conf"
        # As root, nginx's workers would switch to `nobody`, who cannot enter the test's folder.
        user = "user root;\n" if os.geteuid() == 0 else ""
        self.main.write_text(MAIN.format(user=user, dir=folder, site=site, log_format=LOG_FORMAT))
        self.process: ServiceProcess | None = None

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.https_port}"

    def test_config(self) -> subprocess.CompletedProcess:
        return subprocess.run([self.binary, "-t", "-p", str(self.folder), "-c", str(self.main)],
                              capture_output=True, text=True, timeout=30, check=False)

    def start(self) -> Nginx:
        checked = self.test_config()
        assert checked.returncode == 0, checked.stderr
        argv = [self.binary, "-p", str(self.folder), "-c", str(self.main)]
        self.process = ServiceProcess("nginx", argv, dict(os.environ), self.folder)
        wait_until(lambda: self._listening() or not self.process.is_running(), timeout=20,
                   what="nginx to listen")
        assert self.process.is_running(), self.error_log()
        return self

    def _listening(self) -> bool:
        import socket

        try:
            with socket.create_connection(("127.0.0.1", self.https_port), timeout=1):
                return True
        except OSError:
            return False

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop(timeout=10)  # SIGTERM: nginx's fast shutdown

    def error_log(self) -> str:
        path = self.folder / "error.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def access_log(self) -> list[str]:
        path = self.folder / "access.log"
        return path.read_text(errors="replace").splitlines() if path.exists() else []
