"""The chart's manifests on a cluster's network: each pod (two web, one consumer) in its own network
namespace with its own 10.x address, with the environment its rendered ConfigMap and Secret give
it, behind nginx configured from the Ingress as ingress-nginx would be, with PostgreSQL, Redis and
Kafka on the node's bridge address and a real Prometheus scraping what the ServiceMonitor selects.

Needs root for the namespaces (CI has it); skipped with the reason where they cannot be made.
Figures go to `artifacts/faults/cluster-*.json`, as the other fault scenarios'.
"""

from __future__ import annotations

import asyncio
import http.client
import re
import ssl
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from scripts.processes import async_wait_until, wait_until
from tests.support.cluster.cluster import SECRET, Cluster, manifests_render, tls_make
from tests.support.cluster.netns import netns_unavailable
from tests.support.cluster.pods import RunningPod, http_status
from tests.support.eventsource import BrowserClient
from tests.support.faults import Production, scenario_run
from tests.support.prometheus_server import prometheus_ensure
from tests.support.tools import helm_ensure

pytestmark = [pytest.mark.faults, pytest.mark.timeout(600)]

KAFKA_OUTAGE_SECONDS = 60.0  # the outage: four heartbeat intervals and more
STATUS_5XX = re.compile(r'" 5\d\d upstream=')
UP_SELECTOR = re.compile(r'\bup\{job="([^"]+)"\}')


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    reason = netns_unavailable()
    if reason is not None:
        pytest.skip(reason)
    prometheus_ensure()  # `make tools` built it; a no-op then
    running = Cluster(tmp_path_factory.mktemp("cluster"))
    try:
        running.network.setup()
        running.services_start()
        running.render(manifests_render(helm_ensure(), running.values(), running.folder))
        running.migrate()
        web = [running.pod_start("web", name) for name in ("web-a", "web-b")]
        running.pod_start("consumer", "consumer-a")
        running.front_start(tls_make(running.folder / "tls"))
        for pod in web:
            running.serve(pod)
        yield running
    finally:
        running.teardown()


@pytest.fixture(scope="module")
def host(cluster: Cluster) -> str:
    return str(cluster.rendered.of_kind("Ingress")[0]["spec"]["rules"][0]["host"])


def insecure() -> ssl.SSLContext:
    """The throwaway certificate is not checked: the Ingress's TLS is not what is tested here."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def request(address: str, port: int, method: str, path: str, headers: dict[str, str], body: str = "",
            tls: bool = False) -> http.client.HTTPResponse:
    connection: http.client.HTTPConnection = (
        http.client.HTTPSConnection(address, port, timeout=10, context=insecure()) if tls
        else http.client.HTTPConnection(address, port, timeout=10))
    connection.request(method, path, body=body or None, headers=headers)
    response = connection.getresponse()
    response.read()
    connection.close()
    return response


def cookies(response: http.client.HTTPResponse) -> dict[str, str]:
    found = {}
    for header in response.headers.get_all("Set-Cookie") or []:
        name, _, rest = header.partition("=")
        found[name.strip()] = rest.split(";", 1)[0]
    return found


def admin_login(address: str, port: int, host: str, *, tls: bool) -> str:
    """Log in to the admin as a browser would (form, CSRF cookie); the session cookie's value.
    Directly on a pod, the request carries what the ingress adds (X-Forwarded-Proto: https)."""
    base = {"Host": host} if tls else {"Host": host, "X-Forwarded-Proto": "https"}
    connection = (http.client.HTTPSConnection(address, port, timeout=10, context=insecure()) if tls
                  else http.client.HTTPConnection(address, port, timeout=10))
    connection.request("GET", "/admin/login/", headers=base)
    form = connection.getresponse()
    html = form.read().decode()
    assert form.status == 200, (form.status, html[:300])
    csrf = cookies(form)["csrftoken"]
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html).group(1)
    body = (f"csrfmiddlewaretoken={token}&username={SECRET['DJANGO_SUPERUSER_USERNAME']}"
            f"&password={SECRET['DJANGO_SUPERUSER_PASSWORD']}&next=/admin/")
    connection.request("POST", "/admin/login/", body=body, headers={
        **base, "Cookie": f"csrftoken={csrf}", "Origin": f"https://{host}", "Referer": f"https://{host}/admin/login/",
        "Content-Type": "application/x-www-form-urlencoded"})
    login = connection.getresponse()
    login.read()
    connection.close()
    assert (login.status, login.headers.get("Location")) == (302, "/admin/"), login.status
    return cookies(login)["sessionid"]


def honoured(pod: RunningPod, host: str, session: str) -> tuple[int, int]:
    """(GET /admin/, GET /crm-events) on `pod` directly with the session cookie."""
    headers = {"Host": host, "X-Forwarded-Proto": "https", "Cookie": f"sessionid={session}"}
    admin = request(pod.address, pod.port("http"), "GET", "/admin/", headers).status
    return admin, stream_status(pod.address, pod.port("http"), headers)


def stream_status(address: str, port: int, headers: dict[str, str], tls: bool = False) -> int:
    """The status of a stream request and, when 200, that its first frame is the hello."""
    from tests.support.sse_client import SseConnection

    async def opened() -> int:
        connection = await SseConnection.open(address, port, "/crm-events", headers,
                                              tls=insecure() if tls else None)
        try:
            if connection.status == 200:
                events = await connection.events_until(lambda got: any(e.data for e in got), timeout=10)
                assert '"kind":"connected"' in next(e.data for e in events if e.data), events
            return connection.status
        finally:
            connection.abort()

    return asyncio.run(opened())


def test_every_prometheus_target_is_up(cluster: Cluster) -> None:
    expected = {pod.endpoint("http") for pod in cluster.web}
    expected |= {pod.endpoint("metrics") for pod in cluster.consumers}

    def all_up() -> list[dict]:
        targets = cluster.prometheus.active_targets()
        up = [t for t in targets if t["health"] == "up"]
        return up if {t["labels"]["instance"] for t in up} == expected and len(targets) == len(up) else []

    targets = wait_until(all_up, timeout=30, what=f"Prometheus to scrape {sorted(expected)} successfully")
    web_job = cluster.web_service
    up = cluster.prometheus.query(f'up{{job="{web_job}"}}')
    assert sorted((s["metric"]["pod"], s["value"][1]) for s in up) == [("web-a", "1"), ("web-b", "1")]
    assert {t["labels"]["job"] for t in targets} >= {web_job}


def test_the_shipped_alerts_select_what_prometheus_scrapes(cluster: Cluster) -> None:
    """The PrometheusRule's rules load, and each `up{job=...}` it watches names a scraped job
    (an alert on a job name the Operator never gives would stay silent through an outage)."""
    def evaluated() -> list[dict]:
        rules = [rule for group in cluster.prometheus.rule_groups() for rule in group["rules"]]
        return rules if rules and all(rule["health"] != "unknown" for rule in rules) else []

    rules = wait_until(evaluated, timeout=30, what="Prometheus to load and evaluate the rules")
    assert {rule["health"] for rule in rules} == {"ok"}, [r for r in rules if r["health"] != "ok"]
    jobs = {job for rule in rules for job in UP_SELECTOR.findall(rule["query"])}
    assert jobs, "the PrometheusRule watches no `up{job=...}`"
    for job in jobs:
        assert len(cluster.prometheus.query(f'up{{job="{job}"}}')) >= 1, job
    firing = [r["name"] for r in rules if r.get("state") == "firing"]
    assert firing == [], firing


def test_a_login_on_one_pod_is_honoured_by_the_other(cluster: Cluster, host: str) -> None:
    pod_a, pod_b = cluster.web
    session = admin_login(pod_a.address, pod_a.port("http"), host, tls=False)
    assert honoured(pod_b, host, session) == (200, 200)
    assert honoured(pod_a, host, session) == (200, 200)
    # Through the ingress, whichever pod it picks: the session is the database's, not a pod's.
    front = cluster.ingress.pod.address
    through = admin_login(front, 443, host, tls=True)
    for pod in (pod_a, pod_b):
        assert honoured(pod, host, through) == (200, 200)
    headers = {"Host": host, "Cookie": f"sessionid={through}"}
    assert request(front, 443, "GET", "/admin/", headers, tls=True).status == 200
    assert stream_status(front, 443, headers, tls=True) == 200
    assert stream_status(front, 443, {"Host": host}, tls=True) == 401  # and none without it


def test_the_ingress_publishes_no_operations_endpoint(cluster: Cluster, host: str) -> None:
    front = cluster.ingress.pod.address
    for path in ("/metrics", "/status", "/readyz", "/healthz"):
        assert request(front, 443, "GET", path, {"Host": host}, tls=True).status == 404, path
    assert request(front, 443, "GET", "/asyncapi.yaml", {"Host": host}, tls=True).status == 200


def scenario_args(cluster: Cluster, host: str) -> dict[str, Any]:
    """Browsers on the ingress with the admin's session; their watchdog counts a stall when a
    stream is silent for as long as the ingress waits before it cuts one (its read timeout)."""
    session = admin_login(cluster.ingress.pod.address, 443, host, tls=True)
    return {"bootstrap": cluster.kafka.bootstrap, "topic": cluster.container("web").env["KAFKA_TOPIC"],
            "ports": [443], "tls": insecure(), "host": cluster.ingress.pod.address,
            "headers": {"Host": host, "Cookie": f"sessionid={session}"},
            "idle_timeout": ingress_read_timeout(cluster)}


def ingress_read_timeout(cluster: Cluster) -> float:
    annotations = cluster.rendered.of_kind("Ingress")[0]["metadata"]["annotations"]
    return float(annotations["nginx.ingress.kubernetes.io/proxy-read-timeout"])


def ingress_5xx(cluster: Cluster, since: int) -> list[str]:
    return [line for line in cluster.ingress.access_log()[since:] if STATUS_5XX.search(line)]


def test_rolling_restart_while_browsers_stream(cluster: Cluster, host: str, capsys) -> None:
    log_from = len(cluster.ingress.access_log())

    async def rollout(production: Production, clients: list[BrowserClient]) -> tuple[float, dict[str, Any]]:
        await production.wait_sent(200)
        started = time.monotonic()
        silences_from = {client.name: len(client.silences) for client in clients}
        ended = await asyncio.to_thread(cluster.rollout)
        healed_at = time.monotonic()
        # The longest a browser went without a byte while the pods were replaced (its reconnection
        # and `retry:` wait included): its time to recover.
        longest = max(max(c.silences[silences_from[c.name]:], default=0.0) for c in clients)
        return healed_at, {"rollout_s": round(healed_at - started, 1),
                           "termination_s": [round(e.seconds, 1) for e in ended],
                           "killed": sum(e.killed for e in ended), "longest_silence_s": round(longest, 1)}

    figures = asyncio.run(scenario_run("cluster-rolling-restart", fault=rollout, capsys=capsys,
                                       timeout=300, **scenario_args(cluster, host)))
    figures.assert_exact()
    assert figures.extra["killed"] == 0, figures.extra  # each pod ended inside its grace period
    assert set(figures.extra["statuses"]) == {200}, figures.extra
    assert ingress_5xx(cluster, log_from) == []
    assert [pod.name for pod in cluster.serving] == [pod.name for pod in cluster.web]
    assert len(cluster.web) == 2


class ReadinessWatch:
    """Every web pod's /readyz every half second from its own thread (the readiness probe, more
    often than the chart's period): what it answered other than 200."""

    def __init__(self, pods: list[RunningPod]) -> None:
        self.pods = pods
        self.probes = 0
        self.failures: list[tuple[str, int | None]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="readiness", daemon=True)

    def __enter__(self) -> ReadinessWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def _loop(self) -> None:
        while not self._stop.wait(0.5):
            for pod in self.pods:
                status = http_status(pod.address, pod.port("http"), "/readyz")
                self.probes += 1
                if status != 200:
                    self.failures.append((pod.name, status))


def live(client: BrowserClient, production: Production, within: float = 1.0) -> bool:
    """Past its planned cuts, with events arriving, each within `within` of Kafka's ack (a stream
    catching up receives old ones)."""
    now = time.monotonic()
    recent = [position for position, at in client.arrivals.items() if now - at < within]
    return client.steady and bool(recent) and all(
        client.arrivals[position] - production.acked.get(position, now) < within for position in recent)


def test_kafka_outage_keeps_the_pods_ready_and_streams_resume(cluster: Cluster, host: str, capsys) -> None:
    log_from = len(cluster.ingress.access_log())
    heartbeats: dict[str, int] = {}

    async def outage(production: Production, clients: list[BrowserClient]) -> tuple[float, dict[str, Any]]:
        await production.wait_sent(200)
        # Live streams when Kafka goes. One still catching up from Kafka is sent away (`resync`)
        # and one opened during the outage is told to come back (`unavailable`): both need Kafka.
        await async_wait_until(lambda: all(live(client, production) for client in clients), timeout=120,
                               what="every browser past its planned cuts and live")
        before = {client.name: client.heartbeats for client in clients}
        silences_from = {client.name: len(client.silences) for client in clients}
        connections = sum(client.connections for client in clients)
        with ReadinessWatch(cluster.web) as watch:
            await asyncio.to_thread(cluster.kafka.stop)
            await asyncio.sleep(KAFKA_OUTAGE_SECONDS)  # the outage's length is the scenario itself
            heartbeats.update({c.name: c.heartbeats - before[c.name] for c in clients})
            reconnected = sum(client.connections for client in clients) - connections
            longest = max(max(c.silences[silences_from[c.name]:], default=0.0) for c in clients)
            await asyncio.to_thread(cluster.kafka.start)
            healed_at = time.monotonic()
        return healed_at, {"readyz_probes": watch.probes, "readyz_failures": watch.failures,
                           "heartbeats_min": min(heartbeats.values()), "reconnects_in_outage": reconnected,
                           "longest_silence_s": round(longest, 1)}

    figures = asyncio.run(scenario_run("cluster-kafka-outage", fault=outage, capsys=capsys,
                                       timeout=300, **scenario_args(cluster, host)))
    figures.assert_exact()
    assert figures.extra["readyz_failures"] == [] and figures.extra["readyz_probes"] > 100, figures.extra
    # Every stream open when Kafka went stayed open, each heartbeating: none was silent for as
    # long as the ingress waits before it cuts a stream, and each had a heartbeat at least every
    # half of the outage.
    assert ingress_5xx(cluster, log_from) == []
    # None was sent away: each had joined its hub (a stream still catching up needs Kafka).
    assert (figures.extra["stalls"], figures.extra["reconnects_in_outage"]) == (0, 0), figures.extra
    assert min(heartbeats.values()) >= 2, heartbeats
    assert figures.extra["longest_silence_s"] < ingress_read_timeout(cluster), figures.extra
