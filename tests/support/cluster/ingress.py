"""nginx configured from the chart's Ingress as ingress-nginx would configure it, in its own pod.

What is played of ingress-nginx (controller defaults, then the Ingress's annotations): TLS with
the redirect from http, `X-Forwarded-For` set to the client's address and `X-Forwarded-Proto`,
HTTP/1.1 with keepalive to the pods, `proxy-next-upstream: error timeout` (3 tries), and the
annotations for buffering, read/send/connect timeouts, body size and server/configuration
snippets. The pool of each backend is the Service's ready endpoints, which the test changes the
way the endpoints controller would (a pod leaves it when it starts terminating): the controller
applies them without dropping connections; here a reload does (old workers finish their streams).
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

from scripts.nginx import nginx_find
from scripts.processes import ServiceProcess, wait_until
from tests.support.cluster.netns import Pod

ANNOTATION = "nginx.ingress.kubernetes.io/"
PLAYED = {
    "proxy-buffering": "proxy_buffering {};",
    "proxy-read-timeout": "proxy_read_timeout {}s;",
    "proxy-send-timeout": "proxy_send_timeout {}s;",
    "proxy-connect-timeout": "proxy_connect_timeout {}s;",
    "proxy-body-size": "client_max_body_size {};",
    "configuration-snippet": "{}",
}
# Annotations that change nothing here (or are the controller's defaults we play anyway).
IGNORED = {"ssl-redirect", "force-ssl-redirect", "proxy-http-version", "backend-protocol",
           "affinity", "session-cookie-name", "session-cookie-secure", "session-cookie-path"}
UNPLAYED = "the Ingress annotation {name} is not played by this harness: add it to ingress.py"
LOG_FORMAT = '$remote_addr "$request" $status upstream=$upstream_addr upstream_status=$upstream_status'

MAIN = """\
user root;
pid {dir}/nginx.pid;
error_log {dir}/error.log info;
daemon off;
worker_processes 1;
worker_shutdown_timeout 240s;
events {{ worker_connections 4096; }}
http {{
    log_format ingress '{log_format}';
    access_log {dir}/access.log ingress;
    client_body_temp_path {dir}/client_body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    include {dir}/upstreams.conf;
    include {dir}/servers.conf;
}}
"""

SERVER = """\
server {{
    listen {address}:80;
    listen {address}:443 ssl;
    server_name {host};
    ssl_certificate {tls}/tls.crt;
    ssl_certificate_key {tls}/tls.key;
    if ($scheme = http) {{ return 308 https://$host$request_uri; }}
{server_snippet}
{locations}
}}
"""

LOCATION = """\
    location {match} {{
        proxy_pass http://{upstream};
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_set_header Host $host;
        proxy_set_header X-Request-ID $request_id;
        proxy_set_header X-Real-IP $remote_addr;
        proxy_set_header X-Forwarded-For $remote_addr;
        proxy_set_header X-Forwarded-Host $host;
        proxy_set_header X-Forwarded-Port $server_port;
        proxy_set_header X-Forwarded-Proto $scheme;
        proxy_connect_timeout 5s;
        proxy_next_upstream error timeout;
        proxy_next_upstream_tries 3;
{directives}
    }}
"""


def _location_match(path: str, path_type: str) -> str:
    if path_type == "Exact":
        return f"= {path}"
    return path


class Ingress:
    """nginx in `pod` for every rule of the rendered `ingress`, TLS from `tls_dir`."""

    def __init__(self, ingress: dict[str, Any], pod: Pod, folder: Path, tls_dir: Path) -> None:
        self.ingress, self.pod, self.folder, self.tls_dir = ingress, pod, folder, tls_dir
        folder.mkdir(parents=True, exist_ok=True)
        self.endpoints: dict[str, list[str]] = {name: [] for name in self.backends()}
        self.process: ServiceProcess | None = None
        (folder / "nginx.conf").write_text(MAIN.format(dir=folder, log_format=LOG_FORMAT))
        (folder / "servers.conf").write_text(self._servers())

    def backends(self) -> list[str]:
        """The Services the Ingress sends to (`<service>:<port>`)."""
        names = []
        for rule in self.ingress["spec"]["rules"]:
            for path in rule["http"]["paths"]:
                service = path["backend"]["service"]
                names.append(f"{service['name']}")
        return sorted(set(names))

    def _directives(self) -> str:
        lines = []
        for key, value in (self.ingress["metadata"].get("annotations") or {}).items():
            if not key.startswith(ANNOTATION):
                continue
            name = key.removeprefix(ANNOTATION)
            if name in PLAYED:
                lines.append("        " + PLAYED[name].format(value))
            elif name not in IGNORED and name != "server-snippet":
                raise ValueError(UNPLAYED.format(name=name))
        return "\n".join(lines)

    def _servers(self) -> str:
        annotations = self.ingress["metadata"].get("annotations") or {}
        servers = []
        for rule in self.ingress["spec"]["rules"]:
            locations = "".join(
                LOCATION.format(match=_location_match(p["path"], p.get("pathType", "Prefix")),
                                upstream=p["backend"]["service"]["name"], directives=self._directives())
                for p in rule["http"]["paths"]
            )
            servers.append(SERVER.format(address=self.pod.address, host=rule["host"], tls=self.tls_dir,
                                         server_snippet=annotations.get(f"{ANNOTATION}server-snippet", ""),
                                         locations=locations))
        return "\n".join(servers)

    def _upstreams(self) -> str:
        blocks = []
        for name, addresses in self.endpoints.items():
            # No ready endpoint: ingress-nginx answers 503; so does an upstream with only a down server.
            servers = "".join(f"    server {a} max_fails=0;\n" for a in addresses)
            servers = servers or "    server 127.0.0.1:1 down;\n"
            blocks.append(f"upstream {name} {{\n{servers}    keepalive 32;\n}}\n")
        return "".join(blocks)

    def endpoints_set(self, service: str, addresses: list[str]) -> None:
        """The Service's ready endpoints changed: the controller's new backend pool."""
        self.endpoints[service] = list(addresses)
        (self.folder / "upstreams.conf").write_text(self._upstreams())
        if self.process is not None:
            reloads = self._reloads()
            self.process.signal(signal.SIGHUP)
            # Applied once the master has read it (new workers serve new connections from then on).
            wait_until(lambda: self._reloads() > reloads, timeout=20, what="nginx to reload its pool")

    def _reloads(self) -> int:
        path = self.folder / "error.log"
        return path.read_text(errors="replace").count("reconfiguring") if path.exists() else 0

    def start(self) -> Ingress:
        (self.folder / "upstreams.conf").write_text(self._upstreams())
        argv = self.pod.command([nginx_find(), "-p", str(self.folder), "-c", str(self.folder / "nginx.conf")])
        self.process = ServiceProcess("ingress-nginx", argv, dict(os.environ), self.folder)
        return self

    def access_log(self) -> list[str]:
        path = self.folder / "access.log"
        return path.read_text(errors="replace").splitlines() if path.exists() else []

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop(timeout=10)
