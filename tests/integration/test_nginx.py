"""The shipped `docker/nginx.conf`, run by a real nginx (Debian 12's 1.22) in front of two Daphne
processes, with a self-signed certificate made by `docker/tls-selfsigned.sh`.

Only the lines the file's header names are replaced (scripts/nginx.py): upstream
addresses, listen ports, the certificate folder. Clients speak TLS to nginx and HTTP/2 when
they offer it; nginx speaks HTTP/1.1 with keep-alive to the web processes.
"""

from __future__ import annotations

import asyncio
import json
import queue
import re
import signal
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser

from scripts.nginx import Nginx
from scripts.servers import free_port
from tests.integration.conftest import Stack, produce
from tests.integration.test_viewer import (  # noqa: F401  (fixtures, used by name)
    STAFF,
    STAFF_PASSWORD,
    ViewerPage,
    browser,
    events_produce,
    grant_give,
    viewer_db_template,
)
from tests.support.faults import Production, scenario_run
from tests.support.processes import ROOT, ServiceProcess, http_get, wait_until
from tests.support.tools import nginx_ensure

pytestmark = pytest.mark.integration

NGINX_ADDRESS = "127.0.0.1"  # where nginx's connections to the web processes come from


@pytest.fixture(scope="session")
def nginx_binary() -> str:
    return nginx_ensure()


@pytest.fixture(scope="session")
def tls_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A throwaway certificate for 127.0.0.1, made by the compose `tls` service's own script."""
    folder = tmp_path_factory.mktemp("tls")
    done = subprocess.run(
        ["bash", str(ROOT / "docker" / "tls-selfsigned.sh")], cwd=ROOT, capture_output=True, text=True,
        env=script_env(TLS_DIR=str(folder), TLS_HOSTNAMES="127.0.0.1,localhost"), timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return folder


def script_env(**overrides: str) -> dict[str, str]:
    """The environment of a docker/*.sh script run outside its image: this virtualenv's python."""
    import os

    return {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", **overrides}


@dataclass
class Front:
    """nginx with the shipped configuration in front of the stack's web processes."""

    nginx: Nginx
    ports: list[int]
    daphnes: list[ServiceProcess]
    tls_dir: Path

    @property
    def url(self) -> str:
        return self.nginx.url

    @property
    def cafile(self) -> str:
        return str(self.tls_dir / "fullchain.pem")

    def tls(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.cafile)


def front_start(stack: Stack, tmp_path: Path, nginx_binary: str, tls_dir: Path, **variables: str) -> Front:
    """The production variables behind nginx, a consumer, two web processes and nginx."""
    https_port, http_port = free_port(), free_port()
    stack.env.update(
        TRUSTED_PROXIES=f"{NGINX_ADDRESS}/32",
        DJANGO_SECURE_PROXY_SSL_HEADER="true",
        DJANGO_SECURE_SSL_REDIRECT="true",
        DJANGO_SECURE_HSTS_SECONDS="60",
        DJANGO_CSRF_TRUSTED_ORIGINS=f"https://127.0.0.1:{https_port}",
        **variables,
    )
    stack.consumer()
    started = [stack.daphne(f"daphne-{name}") for name in "ab"]
    for _, port in started:
        stack.wait_ready(port)
    ports = [port for _, port in started]
    nginx = Nginx(nginx_binary, tmp_path / "nginx", upstreams=[f"127.0.0.1:{port}" for port in ports],
                  https_port=https_port, http_port=http_port, tls_dir=tls_dir)
    nginx.start()
    stack.add(nginx.process)
    return Front(nginx, ports, [process for process, _ in started], tls_dir)


@pytest.fixture
def front(stack: Stack, tmp_path: Path, nginx_binary: str, tls_dir: Path, request) -> Front:
    marker = request.node.get_closest_marker("service_env")
    return front_start(stack, tmp_path, nginx_binary, tls_dir, **(marker.kwargs if marker else {}))


# --- curl ---------------------------------------------------------------------------------


def curl(front: Front, *args: str, timeout: float = 15) -> subprocess.CompletedProcess:
    argv = ["curl", "-sS", "--cacert", front.cafile, "--max-time", str(timeout), *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout + 5)


class CurlStream:
    """`curl -N` reading a stream through nginx; its lines arrive in a queue as curl prints them."""

    def __init__(self, front: Front, path: str, *args: str) -> None:
        argv = ["curl", "-sS", "-N", "-v", "--http2", "--cacert", front.cafile, *args, front.url + path]
        self.process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        for line in self.process.stdout:
            self.lines.put(line.rstrip("\n"))

    def wait_for(self, pattern: str, timeout: float = 10) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                break
            self.seen.append(line)
            if re.search(pattern, line):
                return line
        raise AssertionError(f"no line matching {pattern!r} within {timeout}s; saw {self.seen[-5:]}")

    def close(self) -> str:
        """Stop curl; return what it said on stderr (its -v trace)."""
        self.process.terminate()
        _, stderr = self.process.communicate(timeout=10)
        return stderr


def established_from(ports: list[int], peer: str) -> int:
    """TCP connections now established to any of `ports` from `peer` (IPv4), from /proc/net/tcp."""
    wanted = {f"{port:04X}" for port in ports}
    peer_hex = "".join(f"{int(part):02X}" for part in reversed(peer.split(".")))
    count = 0
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, remote, state = line.split()[1:4]
        if state == "01" and local.split(":")[1] in wanted and remote.split(":")[0] == peer_hex:
            count += 1
    return count


def test_http2_over_tls_to_clients_keep_alive_to_several_web_processes(front, env, kafka, topic):
    version = curl(front, "--http2", "-o", "/dev/null", "-w", "%{http_version} %{http_code}",
                   front.url + "/healthz")
    assert version.stdout == "2 200", version.stderr

    # The proxy's headers reach Django: https is believed (HSTS), the Host is nginx's client's.
    info = curl(front, "--http2", "-D", "-", front.url + "/")
    head, _, body = info.stdout.partition("\n\n")  # text mode: curl's CRLFs read as LFs
    assert head.startswith("HTTP/2 200"), info.stdout
    assert re.search(r"(?im)^strict-transport-security: max-age=60$", head), head
    assert json.loads(body)["topic"] == topic, info.stdout

    # nginx's plain-http port sends browsers to https; a web process's own plain http does too,
    # except for the probes, which a kubelet or compose asks over plain http.
    redirect = curl(front, "-o", "/dev/null", "-w", "%{http_code} %{redirect_url}",
                    f"http://127.0.0.1:{front.nginx.http_port}/admin/")
    assert redirect.stdout == "301 https://127.0.0.1/admin/"
    direct = http_get(front.ports[0], "/")
    assert direct[0] == 301
    for answered in ("/readyz", "/status", "/metrics"):  # probes and scrapes: plain http, no redirect
        assert http_get(front.ports[0], answered)[0] == 200, answered
    # nginx's address may read them (it is in METRICS_ALLOWED_NETWORKS here, as in compose): it
    # must not pass them on.
    for private in ("/metrics", "/status"):
        hidden = curl(front, "--http2", "-o", "/dev/null", "-w", "%{http_code}", front.url + private)
        assert hidden.stdout == "404", private

    # Several requests in a row, one client connection each: nginx keeps connections to the web
    # processes open between them (HTTP/1.1 keep-alive) and spreads them over both.
    for _ in range(8):
        assert curl(front, "-o", "/dev/null", "-w", "%{http_code}", front.url + "/").stdout == "200"
    assert established_from(front.ports, NGINX_ADDRESS) >= 1, "no idle keep-alive connection to Daphne"
    upstreams = {line.rsplit("upstream=", 1)[1] for line in front.nginx.access_log() if "GET / " in line}
    assert upstreams == {f"127.0.0.1:{port}" for port in front.ports}

    # The stream is not buffered: each event reaches curl while the stream stays open.
    stream = CurlStream(front, "/crm-events")
    stream.wait_for(r'"kind":"connected"')
    for seq in range(5):
        sent_at = time.monotonic()
        ((partition, offset),) = asyncio.run(produce(kafka.bootstrap, topic, [json.dumps(
            {"type": "deal.won", "seq": seq}).encode()]))
        stream.wait_for(rf'"partition":{partition},"offset":{offset}\b', timeout=5)
        assert time.monotonic() - sent_at < 5
    assert stream.process.poll() is None, "the stream ended"
    trace = stream.close()
    assert "< HTTP/2 200" in trace, trace[-2000:]


@pytest.mark.service_env(SSE_MAX_STREAMS_PER_CLIENT="1")
def test_per_client_limits_count_the_address_nginx_saw(front):
    """One stream per client address per web process: with two web processes, a client gets two
    streams and is refused the third, while another address still gets one. Were nginx's own
    address counted, the other client would be refused too."""
    open_streams = []
    try:
        for _ in range(2):  # least_conn: one on each web process
            open_streams.append(CurlStream(front, "/crm-events", "--interface", "127.0.0.2"))
            open_streams[-1].wait_for(r'"kind":"connected"')
        for forged in ([], ["-H", "X-Forwarded-For: 10.9.9.9"]):  # a client's own entry is not believed
            refused = curl(front, "--http2", "--interface", "127.0.0.2", "-w", "\n%{http_code}", *forged,
                           front.url + "/crm-events")
            body, _, status = refused.stdout.rpartition("\n")
            assert status == "429", refused.stdout
            assert (json.loads(body)["code"], json.loads(body)["limit"]) == ("too_many_streams", "client")
        open_streams.append(CurlStream(front, "/crm-events", "--interface", "127.0.0.3"))
        open_streams[-1].wait_for(r'"kind":"connected"')
        streams = [http_get(port, "/readyz")[1]["streams"] for port in front.ports]
        assert sorted(streams) == [1, 2]
    finally:
        for stream in open_streams:
            stream.close()


def test_oversized_requests_through_nginx_get_the_web_processes_json_refusals(front):
    """nginx lets heads up to 64 KiB through (large_client_header_buffers), so a request line or
    header over the web processes' 32 KiB gets their JSON 414 or 431, over HTTP/2 and HTTP/1.1."""
    cookie = "Cookie: c=" + "x" * 40_000
    for version in ("--http2", "--http1.1"):
        for args, status in ((["-H", cookie], 431), ([], 414)):
            path = "/crm-events" if args else "/crm-events?kind=" + "k" * 40_000
            done = curl(front, version, "-w", "\n%{http_code}", *args, front.url + path)
            body, _, code = done.stdout.rpartition("\n")
            assert code == str(status), (version, status, done.stdout[:300], done.stderr)
            limit = "header" if status == 431 else "request_line"
            assert (json.loads(body)["limit"], json.loads(body)["max"]) == (limit, 32 * 1024)


# --- a staff login and the viewer, over https -----------------------------------------------


@pytest.fixture
def staff_database(env: dict[str, str], tmp_path: Path, viewer_db_template: Path) -> None:  # noqa: F811
    import shutil

    database = tmp_path / "db.sqlite3"
    shutil.copyfile(viewer_db_template, database)
    env["DATABASE_URL"] = f"sqlite:///{database}"
    grant_give(env, STAFF, {"topic": [env["KAFKA_TOPIC"]]})  # under session auth staff read under a grant


def csrf_token(html: str) -> str:
    return re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html).group(1)


@pytest.mark.service_env(SSE_AUTH_MODE="session")
def test_staff_login_over_https_through_nginx(staff_database, front):
    with httpx.Client(base_url=front.url, verify=front.tls()) as client:
        form = client.get("/admin/login/?next=/admin/")
        assert form.status_code == 200
        assert "secure" in form.headers["set-cookie"].lower()  # the CSRF cookie is https-only
        login = client.post(
            "/admin/login/?next=/admin/",
            data={"csrfmiddlewaretoken": csrf_token(form.text), "username": STAFF,
                  "password": STAFF_PASSWORD, "next": "/admin/"},
            headers={"Origin": front.url, "Referer": front.url + "/admin/login/"},
        )
        assert (login.status_code, login.headers.get("location")) == (302, "/admin/"), login.text[:500]
        assert re.search(r"sessionid=[^;]+;.*[Ss]ecure", login.headers["set-cookie"])
        assert client.get("/admin/").status_code == 200
        with client.stream("GET", "/crm-events") as stream:  # session auth on the stream
            assert stream.status_code == 200
            lines = stream.iter_lines()
            assert any('"kind":"connected"' in next(lines) for _ in range(4))

    # A form posted from another origin is still refused.
    with httpx.Client(base_url=front.url, verify=front.tls()) as client:
        form = client.get("/admin/login/")
        forged = client.post(
            "/admin/login/", data={"csrfmiddlewaretoken": csrf_token(form.text), "username": STAFF,
                                   "password": STAFF_PASSWORD},
            headers={"Origin": "https://evil.example"},
        )
        assert forged.status_code == 403


@pytest.fixture
def https_viewer(browser: Browser, front: Front) -> Iterator[ViewerPage]:  # noqa: F811
    context = browser.new_context(base_url=front.url, ignore_https_errors=True)
    tab = ViewerPage(context.new_page())
    yield tab
    context.close()
    assert tab.errors == [], f"JavaScript errors on the page: {tab.errors}"


@pytest.mark.service_env(SSE_AUTH_MODE="session")
def test_the_viewer_logs_in_and_streams_in_chromium_over_http2(staff_database, https_viewer, kafka, topic):
    https_viewer.login()
    https_viewer.open()
    page = https_viewer.page
    assert page.evaluate("performance.getEntriesByType('navigation')[0].nextHopProtocol") == "h2"
    produced = events_produce(kafka.bootstrap, topic, ["deal.won"] * 3, partition=0)
    https_viewer.expect_rows(3)
    assert https_viewer.positions() == produced[::-1]
    protocols = page.evaluate(
        "performance.getEntriesByType('resource').filter(e => e.name.includes('/crm-events'))"
        ".map(e => e.nextHopProtocol)"
    )
    assert set(protocols) <= {"h2"}, protocols  # the EventSource shares the page's HTTP/2 connection


# --- a web process dies behind nginx --------------------------------------------------------


@pytest.mark.service_env(SSE_RETRY_MS="500", SSE_HEARTBEAT_INTERVAL="2")
async def test_browsers_resume_through_nginx_when_a_web_process_is_killed(front, env, capsys):
    victim = front.daphnes[0]
    held: dict[str, int] = {}

    async def fault(production: Production, clients):
        await production.wait_sent(300)
        held["streams"] = (await asyncio.to_thread(http_get, front.ports[0], "/readyz"))[1]["streams"]
        victim.signal(signal.SIGKILL)
        await asyncio.to_thread(victim.process.wait, 10)
        return time.monotonic(), {"killed": victim.name, "streams_on_killed": held["streams"]}

    figures = await scenario_run(
        "nginx-daphne-sigkill", bootstrap=env["KAFKA_BROKERS"], topic=env["KAFKA_TOPIC"],
        ports=[front.nginx.https_port], fault=fault, capsys=capsys, tls=front.tls(),
    )
    assert held["streams"] > 0, "no browser was on the killed web process"
    assert front.nginx.process.is_running(), front.nginx.error_log()
    wait_until(lambda: http_get(front.ports[1], "/readyz")[0] == 200, timeout=30, what="survivor ready")
    figures.assert_exact()
