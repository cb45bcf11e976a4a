"""The whole cluster of the cluster test, from the rendered manifests: the pod network, the
services the chart expects outside it (Kafka, Redis, PostgreSQL on the node's bridge address),
the migration Job, the web and consumer pods, the ingress controller and Prometheus.

The chart renders with values that point it at those services (what a user's values file
carries) and the existing Secret's content is given here, as a cluster would hold it.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from scripts.processes import ROOT
from scripts.servers import KafkaServer, RedisServer, free_port
from tests.support.cluster.ingress import Ingress
from tests.support.cluster.manifests import Container, Rendered
from tests.support.cluster.netns import PodNetwork
from tests.support.cluster.pods import Kubelet, RunningPod, Termination
from tests.support.cluster.scrape import Prometheus
from tests.support.postgres import PostgresServer

CHART = ROOT / "deploy" / "helm" / "crm-events"
KUSTOMIZE_BASE = ROOT / "deploy" / "kubernetes" / "base"
RELEASE = "aetherlink"
NAMESPACE = "aetherlink"
SECRET_NAME = "aetherlink"
SECRET = {
    "DJANGO_SECRET_KEY": "cluster-test-secret-key-cluster-test-secret-key-0123456789",
    "DJANGO_SUPERUSER_USERNAME": "admin",
    "DJANGO_SUPERUSER_PASSWORD": "cluster-test-admin-password",
    "DJANGO_SUPERUSER_EMAIL": "admin@example.com",
    "METRICS_TOKEN": "cluster-test-metrics-token",
}


def manifests_render(services: dict[str, str], tools: dict[str, str]) -> str:
    """The chart rendered by `helm template` with `services` as its configuration; before the
    chart exists, the kustomize base (whose ConfigMap the services then replace in the pods)."""
    if CHART.exists():
        sets = [f"--set-string=config.{name}={value}" for name, value in services.items()]
        argv = [tools["helm"], "template", RELEASE, str(CHART), "--namespace", NAMESPACE, *sets]
    else:
        argv = [tools["kustomize"], "build", str(KUSTOMIZE_BASE)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:3])} failed: {done.stderr[-3000:]}")
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

    @property
    def services(self) -> dict[str, str]:
        """What the values file points the chart at: the services outside the cluster."""
        return {"KAFKA_BROKERS": self.kafka.bootstrap, "REDIS_URL": self.redis.url,
                "DATABASE_URL": self.database}

    def render(self, text: str) -> None:
        self.rendered = Rendered.parse(text)
        self.kubelet = Kubelet(self.network, self.folder / "pods")
        (self.folder / "pods").mkdir(exist_ok=True)

    def container(self, component: str) -> Container:
        deployment = next(d["metadata"]["name"] for d in self.rendered.of_kind("Deployment")
                          if d["spec"]["template"]["metadata"]["labels"].get("app.kubernetes.io/component")
                          == component)
        container = self.rendered.container(deployment, {SECRET_NAME: SECRET})
        container.env.update(self.services)  # a no-op once the chart renders them from its values
        return container

    @property
    def web_service(self) -> str:
        web = self.container("web").labels
        return next(s["metadata"]["name"] for s in self.rendered.of_kind("Service")
                    if s["spec"].get("selector") and s["spec"]["selector"].items() <= web.items()
                    and s["spec"].get("clusterIP") != "None")

    def migrate(self) -> str:
        """The chart's migration Job (docker/init.sh): schema, admin user, topics."""
        return self.kubelet.job("migrate", self.container("web"), ["init.sh"])

    def pod_start(self, component: str, name: str) -> RunningPod:
        running = self.kubelet.run(name, self.container(component))
        (self.web if component == "web" else self.consumers).append(running)
        return running

    def front_start(self, tls_dir: Path) -> None:
        ingress = self.rendered.of_kind("Ingress")[0]
        front = self.network.pod_add("ingress-nginx")
        self.ingress = Ingress(ingress, front, self.folder / "ingress", tls_dir)
        self.ingress.start()
        endpoints = self.rendered.scrape_endpoints({SECRET_NAME: SECRET})
        scraper = self.network.pod_add("prometheus")
        self.prometheus = Prometheus(endpoints, scraper, self.folder / "prometheus")
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
        deployment = self.rendered.one("Deployment", self.container("web").deployment)
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


def openssl_missing() -> bool:
    return shutil.which("openssl") is None
