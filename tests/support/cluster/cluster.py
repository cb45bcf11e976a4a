"""The whole cluster of the cluster test, from the chart rendered by `helm template`: the pod
network, the services the chart expects outside it (Kafka, Redis, PostgreSQL on the node's
bridge address), the migration Job, the web and consumer pods, the ingress controller and
Prometheus. The values are what a user's values file carries: where those services are, the
Secret's content, the Ingress with TLS, the ServiceMonitors and the PrometheusRule.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from scripts.processes import ROOT
from scripts.servers import KafkaServer, RedisServer, free_port
from tests.support.cluster.ingress import Ingress
from tests.support.cluster.manifests import Container, Rendered
from tests.support.cluster.netns import PodNetwork
from tests.support.cluster.pods import Kubelet, RunningPod, Termination
from tests.support.cluster.scrape import Prometheus
from tests.support.postgres import PostgresServer

CHART = ROOT / "deploy" / "helm" / "crm-events"
RELEASE = "aetherlink"
NAMESPACE = "aetherlink"
HOST = "crm-events.example.com"
SECRET = {
    "DJANGO_SECRET_KEY": "cluster-test-secret-key-cluster-test-secret-key-0123456789",
    "DJANGO_SUPERUSER_USERNAME": "admin",
    "DJANGO_SUPERUSER_PASSWORD": "cluster-test-admin-password",
    "DJANGO_SUPERUSER_EMAIL": "admin@example.com",
    "METRICS_TOKEN": "cluster-test-metrics-token",
}


def manifests_render(helm: str, values: dict[str, Any], folder: Path) -> str:
    """`helm template` of the chart with `values` (a values file, as a user passes it)."""
    values_file = folder / "values.yaml"
    values_file.write_text(yaml.safe_dump(values))
    argv = [helm, "template", RELEASE, str(CHART), "--namespace", NAMESPACE, "--values", str(values_file)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"helm template failed: {done.stderr[-3000:]}")
    return done.stdout


@dataclass
class Cluster:
    folder: Path
    network: PodNetwork = field(default_factory=PodNetwork)
    web: list[RunningPod] = field(default_factory=list)
    consumers: list[RunningPod] = field(default_factory=list)
    serving: list[RunningPod] = field(default_factory=list)  # the web Service's ready endpoints

    def services_start(self) -> None:
        gateway = self.network.gateway
        self.kafka = KafkaServer(port=free_port(), controller_port=free_port(),
                                 data_dir=self.folder / "kafka", host=gateway)
        self.kafka.start()
        self.redis = RedisServer(port=free_port(), data_dir=self.folder / "redis", host=gateway)
        self.redis.start()
        self.postgres = PostgresServer(self.folder, host=gateway)
        self.postgres.start()
        self.database = self.postgres.database_create("crm")

    def values(self) -> dict[str, Any]:
        """The values file: the services outside the cluster, the Secret, what is switched on."""
        return {
            "config": {"KAFKA_BROKERS": self.kafka.bootstrap, "REDIS_URL": self.redis.url,
                       "DJANGO_ALLOWED_HOSTS": HOST},
            "secrets": {**SECRET, "DATABASE_URL": self.database},
            "ingress": {"enabled": True, "hosts": [HOST],
                        "tls": [{"secretName": "crm-events-tls", "hosts": [HOST]}]},
            "metrics": {"serviceMonitor": {"enabled": True}, "prometheusRule": {"enabled": True}},
        }

    def render(self, text: str) -> None:
        self.rendered = Rendered.parse(text)
        self.kubelet = Kubelet(self.network, self.folder / "pods")
        (self.folder / "pods").mkdir(exist_ok=True)

    def container(self, component: str) -> Container:
        return self.rendered.container(component, {})

    @property
    def web_service(self) -> str:
        web = self.container("web").labels
        return next(s["metadata"]["name"] for s in self.rendered.of_kind("Service")
                    if s["spec"].get("selector") and s["spec"]["selector"].items() <= web.items()
                    and s["spec"].get("clusterIP") != "None")

    def migrate(self) -> str:
        """The chart's migration Job (its pre-install hook): schema, admin user, topics."""
        job = self.container("migrate")
        return self.kubelet.job("migrate", job, job.command)

    def pod_start(self, component: str, name: str) -> RunningPod:
        running = self.kubelet.run(name, self.container(component))
        (self.web if component == "web" else self.consumers).append(running)
        return running

    def front_start(self, tls_dir: Path) -> None:
        ingress = self.rendered.of_kind("Ingress")[0]
        front = self.network.pod_add("ingress-nginx")
        self.ingress = Ingress(ingress, front, self.folder / "ingress", tls_dir)
        self.ingress.start()
        endpoints = self.rendered.scrape_endpoints({})
        scraper = self.network.pod_add("prometheus")
        rules = [group for rule in self.rendered.of_kind("PrometheusRule")
                 for group in rule["spec"]["groups"]]
        self.prometheus = Prometheus(endpoints, scraper, self.folder / "prometheus", rules=rules)
        self.prometheus.start()

    def serve(self, pod: RunningPod) -> None:
        """Once its readiness probe passes, a web pod joins the Service's endpoints."""
        pod.wait_ready()
        self.serving.append(pod)
        self.endpoints_update()

    def leave(self, pod: RunningPod) -> None:
        """A terminating pod leaves the endpoints (while its preStop runs)."""
        self.serving.remove(pod)
        self.endpoints_update()

    def endpoints_update(self) -> None:
        """The ready pods behind the Service (the endpoints controller), and Prometheus's targets."""
        self.ingress.endpoints_set(self.web_service, [pod.endpoint("http") for pod in self.serving])
        running = [p for p in [*self.web, *self.consumers] if p.process.is_running()]
        self.prometheus.pods_set([(p.pod, p.container.labels, p.container.ports, p.name) for p in running])

    def rollout(self) -> list[Termination]:
        """The web Deployment's rolling update, one pod after the other, in its strategy's order:
        with no unavailability allowed, a new pod first, and the old one ends once that is ready."""
        deployment = self.rendered.workload("web")
        strategy = deployment["spec"].get("strategy", {})
        surge_first = str((strategy.get("rollingUpdate") or {}).get("maxUnavailable", "25%")) in ("0", "0%")
        ended = []
        for old in list(self.web):
            new = self.pod_start("web", f"web-{len(self.kubelet.started)}")
            if surge_first:
                self.serve(new)
            ended.append(old.terminate(self.leave))
            self.web.remove(old)
            self.kubelet.remove(old)
            if not surge_first:
                self.serve(new)
            self.endpoints_update()
        return ended

    def teardown(self) -> None:
        for stop in (getattr(self, "ingress", None), getattr(self, "prometheus", None)):
            if stop is not None:
                stop.stop()
        if hasattr(self, "kubelet"):
            self.kubelet.teardown()
        for name in ("kafka", "redis", "postgres"):
            server = getattr(self, name, None)
            if server is not None:
                server.stop()
        self.network.teardown()


def tls_make(folder: Path) -> Path:
    """A throwaway certificate for the Ingress's TLS secret."""
    folder.mkdir(parents=True, exist_ok=True)
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
                    "/CN=crm-events.example.com", "-keyout", str(folder / "tls.key"), "-out",
                    str(folder / "tls.crt")], check=True, capture_output=True, timeout=60)
    return folder
