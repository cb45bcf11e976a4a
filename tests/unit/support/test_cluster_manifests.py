"""The cluster test's reading of rendered manifests, its ingress-nginx configuration and its pod network."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from tests.support.cluster import netns
from tests.support.cluster.ingress import UNPLAYED, Ingress
from tests.support.cluster.manifests import Rendered
from tests.support.cluster.netns import Pod

MANIFESTS = """
apiVersion: v1
kind: ConfigMap
metadata: {name: config}
data: {KAFKA_TOPIC: events, SHARED: from-configmap}
---
apiVersion: v1
kind: Secret
metadata: {name: secret}
data: {METRICS_TOKEN: TOKEN_BASE64}
stringData: {SHARED: from-secret}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: app-web}
spec:
  replicas: 2
  template:
    metadata: {labels: {app.kubernetes.io/component: web, app.kubernetes.io/name: app}}
    spec:
      terminationGracePeriodSeconds: 20
      containers:
        - name: web
          command: [web.sh]
          args: [--verbose]
          ports: [{name: http, containerPort: 9010}]
          env:
            - {name: PORT, value: "9010"}
            - name: TOKEN_AGAIN
              valueFrom: {secretKeyRef: {name: secret, key: METRICS_TOKEN}}
          envFrom: [{configMapRef: {name: config}}, {secretRef: {name: secret}}]
          readinessProbe: {httpGet: {path: /readyz, port: http}}
          lifecycle: {preStop: {sleep: {seconds: 5}}}
---
apiVersion: batch/v1
kind: Job
metadata: {name: app-migrate}
spec:
  template:
    metadata: {labels: {app.kubernetes.io/component: migrate}}
    spec:
      containers:
        - name: migrate
          command: [init.sh]
          lifecycle: {preStop: {exec: {command: [sleep, "3"]}}}
---
apiVersion: v1
kind: Service
metadata: {name: app-web, labels: {app.kubernetes.io/component: web}}
spec:
  selector: {app.kubernetes.io/component: web}
  ports: [{name: http, port: 80, targetPort: http}]
---
apiVersion: monitoring.coreos.com/v1
kind: ServiceMonitor
metadata: {name: app-web, namespace: prod}
spec:
  selector: {matchLabels: {app.kubernetes.io/component: web}}
  endpoints:
    - port: http
      interval: 15s
      authorization: {type: Bearer, credentials: {name: secret, key: METRICS_TOKEN}}
""".replace("TOKEN_BASE64", base64.b64encode(b"t0ken").decode())


def test_a_container_gets_env_from_its_configmap_secret_and_env_entries_in_kubelet_order() -> None:
    web = Rendered.parse(MANIFESTS).container("web", {})
    assert web.env == {"KAFKA_TOPIC": "events", "SHARED": "from-secret", "METRICS_TOKEN": "t0ken",
                       "PORT": "9010", "TOKEN_AGAIN": "t0ken"}
    assert (web.workload, web.command, web.ports, web.replicas) == ("app-web", ["web.sh", "--verbose"],
                                                                    {"http": 9010}, 2)
    assert (web.pre_stop_seconds, web.grace_seconds, web.readiness_path) == (5.0, 20.0, "/readyz")


def test_a_job_is_a_workload_too_and_an_exec_sleep_is_a_pre_stop_sleep() -> None:
    job = Rendered.parse(MANIFESTS).container("migrate", {})
    assert (job.command, job.pre_stop_seconds, job.grace_seconds, job.readiness_path) == (
        ["init.sh"], 3.0, 30.0, None)


def test_an_existing_secret_the_chart_does_not_render_comes_from_the_cluster() -> None:
    text = MANIFESTS.replace("name: secret}", "name: rendered-elsewhere}", 1)
    web = Rendered.parse(text).container("web", {"secret": {"METRICS_TOKEN": "given", "SHARED": "s"}})
    assert (web.env["METRICS_TOKEN"], web.env["TOKEN_AGAIN"]) == ("given", "given")
    with pytest.raises(LookupError, match="Secret secret is neither rendered nor given"):
        Rendered.parse(text).container("web", {})


def test_a_service_monitor_endpoint_resolves_to_its_service_port_and_token() -> None:
    [endpoint] = Rendered.parse(MANIFESTS).scrape_endpoints({})
    assert (endpoint.monitor, endpoint.namespace, endpoint.service, endpoint.port, endpoint.path,
            endpoint.interval, endpoint.bearer, endpoint.selects) == (
        "app-web", "prod", "app-web", "http", "/metrics", "15s", "t0ken",
        {"app.kubernetes.io/component": "web"})


INGRESS = {
    "metadata": {"name": "web", "annotations": {
        "nginx.ingress.kubernetes.io/proxy-buffering": "off",
        "nginx.ingress.kubernetes.io/proxy-read-timeout": "120",
        "nginx.ingress.kubernetes.io/ssl-redirect": "true",
        "other.example/ignored": "x",
    }},
    "spec": {"rules": [{"host": "crm.example.com", "http": {"paths": [
        {"path": "/crm-events", "pathType": "Exact", "backend": {"service": {"name": "web"}}},
        {"path": "/admin", "pathType": "Prefix", "backend": {"service": {"name": "web"}}},
    ]}}]},
}


def test_the_ingress_becomes_the_locations_ingress_nginx_would_make(tmp_path: Path) -> None:
    Ingress(INGRESS, Pod("ingress", "10.9.9.9", "ns"), tmp_path, tmp_path / "tls")
    servers = (tmp_path / "servers.conf").read_text()
    assert "listen 10.9.9.9:443 ssl;" in servers and "server_name crm.example.com;" in servers
    assert "location = /crm-events {" in servers and "location /admin {" in servers
    assert servers.count("proxy_buffering off;") == servers.count("proxy_read_timeout 120s;") == 2
    assert "location / " not in servers  # what the Ingress does not route is the controller's 404


def test_an_annotation_the_harness_does_not_play_is_an_error_not_a_silent_difference(tmp_path: Path) -> None:
    ingress = {**INGRESS, "metadata": {"name": "web", "annotations": {
        "nginx.ingress.kubernetes.io/limit-rps": "5"}}}
    with pytest.raises(ValueError) as refused:
        Ingress(ingress, Pod("ingress", "10.9.9.9", "ns"), tmp_path, tmp_path / "tls")
    assert str(refused.value) == UNPLAYED.format(name="limit-rps")


def test_without_root_the_cluster_test_says_why_it_cannot_make_pods(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(netns.os, "geteuid", lambda: 1000)
    assert netns.netns_unavailable() == netns.NOT_ROOT


def test_concurrent_runs_get_distinct_pod_networks_inside_10_0_0_0_8() -> None:
    subnets = {netns.subnet_for(pid) for pid in range(1, 12_500)}
    assert len(subnets) == 12_499 and all(s.startswith("10.") for s in subnets)
    assert {netns.NAME.match(f"{netns.PREFIX}{pid}v10").group(1) for pid in (7, 4194304)} == {"7", "4194304"}
