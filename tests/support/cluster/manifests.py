"""What the rendered manifests tell each pod, read as the kubelet and the controllers would:
a Deployment's command, environment (envFrom and env from its ConfigMap and Secret), preStop
sleep, grace period and readiness probe; the Ingress's host, paths and annotations; the
ServiceMonitor's endpoints with the Service and pods they select.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any

import yaml

Manifest = dict[str, Any]
COMPONENT = "app.kubernetes.io/component"


@dataclass
class Container:
    """The main container of a workload's pod template (a Deployment's, a Job's), with what the
    kubelet would use."""

    workload: str
    labels: dict[str, str]
    replicas: int
    command: list[str]
    env: dict[str, str]
    ports: dict[str, int]
    pre_stop_seconds: float
    grace_seconds: float
    readiness_path: str | None


@dataclass
class ScrapeEndpoint:
    """One ServiceMonitor endpoint resolved to the Service and the container port it names."""

    monitor: str
    index: int
    service: str
    namespace: str
    port: str
    path: str
    interval: str
    scheme: str
    bearer: str | None
    selects: dict[str, str] = field(default_factory=dict)


@dataclass
class Rendered:
    manifests: list[Manifest]

    @classmethod
    def parse(cls, text: str) -> Rendered:
        return cls([doc for doc in yaml.safe_load_all(text) if doc])

    def of_kind(self, kind: str) -> list[Manifest]:
        return [m for m in self.manifests if m.get("kind") == kind]

    def one(self, kind: str, name: str) -> Manifest:
        found = [m for m in self.of_kind(kind) if m["metadata"]["name"] == name]
        if len(found) != 1:
            raise LookupError(f"{len(found)} {kind} named {name} in the rendered manifests")
        return found[0]

    def data(self, kind: str, name: str, secrets: dict[str, dict[str, str]]) -> dict[str, str]:
        """A ConfigMap's data or a Secret's (stringData, base64 data); an existing Secret the
        chart does not render comes from `secrets`, as the cluster would hold it."""
        found = [m for m in self.of_kind(kind) if m["metadata"]["name"] == name]
        if not found:
            if kind == "Secret" and name in secrets:
                return dict(secrets[name])
            raise LookupError(f"{kind} {name} is neither rendered nor given")
        manifest = found[0]
        data = manifest.get("data") or {}
        secret = kind == "Secret"  # a Secret's data is base64, a ConfigMap's plain
        values = {k: base64.b64decode(v).decode() if secret else v for k, v in data.items()}
        values.update(manifest.get("stringData") or {})
        return {k: str(v) for k, v in values.items()}

    def workload(self, component: str) -> Manifest:
        """The Deployment or Job whose pods have this `app.kubernetes.io/component`."""
        found = [m for m in self.manifests if m.get("kind") in ("Deployment", "Job")
                 and m["spec"]["template"]["metadata"].get("labels", {}).get(COMPONENT) == component]
        if len(found) != 1:
            raise LookupError(f"{len(found)} workloads of component {component} in the rendered manifests")
        return found[0]

    def container(self, component: str, secrets: dict[str, dict[str, str]]) -> Container:
        manifest = self.workload(component)
        spec = manifest["spec"]["template"]["spec"]
        main = spec["containers"][0]
        return Container(
            workload=manifest["metadata"]["name"],
            labels=dict(manifest["spec"]["template"]["metadata"].get("labels") or {}),
            replicas=int(manifest["spec"].get("replicas", 1)),
            command=[*(main.get("command") or []), *(main.get("args") or [])],
            env=self._env(main, secrets),
            ports={p.get("name", str(p["containerPort"])): int(p["containerPort"])
                   for p in main.get("ports", [])},
            pre_stop_seconds=_pre_stop_seconds(main),
            grace_seconds=float(spec.get("terminationGracePeriodSeconds", 30)),
            readiness_path=((main.get("readinessProbe") or {}).get("httpGet") or {}).get("path"),
        )

    def _env(self, container: Manifest, secrets: dict[str, dict[str, str]]) -> dict[str, str]:
        env: dict[str, str] = {}
        for source in container.get("envFrom") or []:
            if "configMapRef" in source:
                env.update(self.data("ConfigMap", source["configMapRef"]["name"], secrets))
            elif "secretRef" in source:
                env.update(self.data("Secret", source["secretRef"]["name"], secrets))
        for item in container.get("env") or []:
            env[item["name"]] = self._env_value(item, secrets)
        return env

    def _env_value(self, item: Manifest, secrets: dict[str, dict[str, str]]) -> str:
        if "value" in item:
            return str(item["value"])
        reference = item.get("valueFrom") or {}
        for key, kind in (("configMapKeyRef", "ConfigMap"), ("secretKeyRef", "Secret")):
            if key in reference:
                return self.data(kind, reference[key]["name"], secrets)[reference[key]["key"]]
        raise ValueError(f"env {item['name']}: only value, configMapKeyRef and secretKeyRef are played here")

    def scrape_endpoints(self, secrets: dict[str, dict[str, str]]) -> list[ScrapeEndpoint]:
        """Every ServiceMonitor endpoint, with the Service it selects and its pods' labels."""
        endpoints = []
        for monitor in self.of_kind("ServiceMonitor"):
            name = monitor["metadata"]["name"]
            namespace = monitor["metadata"].get("namespace", "default")
            selector = monitor["spec"]["selector"].get("matchLabels", {})
            services = [s for s in self.of_kind("Service")
                        if selector.items() <= (s["metadata"].get("labels") or {}).items()]
            for index, endpoint in enumerate(monitor["spec"]["endpoints"]):
                for service in services:
                    port_names = [p.get("name") for p in service["spec"]["ports"]]
                    if endpoint.get("port") in port_names:
                        endpoints.append(
                            self._scrape_endpoint(name, namespace, index, endpoint, service, secrets))
        return endpoints

    def _scrape_endpoint(self, monitor: str, namespace: str, index: int, endpoint: Manifest,
                         service: Manifest, secrets: dict[str, dict[str, str]]) -> ScrapeEndpoint:
        credentials = ((endpoint.get("authorization") or {}).get("credentials")
                       or endpoint.get("bearerTokenSecret"))
        bearer = (self.data("Secret", credentials["name"], secrets)[credentials["key"]]
                  if credentials else None)
        return ScrapeEndpoint(
            monitor=monitor, index=index, service=service["metadata"]["name"], namespace=namespace,
            port=endpoint["port"], path=endpoint.get("path", "/metrics"),
            interval=endpoint.get("interval", "30s"), scheme=endpoint.get("scheme", "http"),
            bearer=bearer, selects=dict(service["spec"].get("selector") or {}),
        )


def _pre_stop_seconds(container: Manifest) -> float:
    """The preStop hook's sleep: the `sleep` action (Kubernetes 1.29+) or `exec: sleep N`."""
    pre_stop = (container.get("lifecycle") or {}).get("preStop") or {}
    if "sleep" in pre_stop:
        return float(pre_stop["sleep"]["seconds"])
    command = (pre_stop.get("exec") or {}).get("command") or []
    if command[:1] == ["sleep"]:
        return float(command[1])
    if command:
        raise ValueError(f"preStop {command!r}: only a sleep is played here")
    return 0.0
