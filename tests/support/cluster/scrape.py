"""A real Prometheus in its own pod, scraping what the ServiceMonitors select as the Prometheus
Operator would configure it: one job per endpoint (`serviceMonitor/<ns>/<name>/<index>`), the
`job` label set to the Service's name, `namespace`, `service`, `pod`, `container` and `endpoint`
labels, the endpoint's path, scheme and bearer token from the Secret. Targets come from a file
the test rewrites as pods come and go (the Operator's endpoints discovery, played by hand).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import yaml

from scripts.processes import ServiceProcess, wait_until
from tests.support.cluster.manifests import ScrapeEndpoint
from tests.support.cluster.netns import Pod
from tests.support.prometheus_server import api_get, prometheus_ensure

PORT = 9090
# The ServiceMonitor's interval, shortened so the test waits seconds rather than half a minute
# for the first scrapes; nothing else of the endpoint is changed.
TEST_INTERVAL = "2s"


def job_name(endpoint: ScrapeEndpoint) -> str:
    return f"serviceMonitor/{endpoint.namespace}/{endpoint.monitor}/{endpoint.index}"


class Prometheus:
    def __init__(self, endpoints: list[ScrapeEndpoint], pod: Pod, folder: Path, *,
                 rules: list[dict] | None = None) -> None:
        self.endpoints, self.pod, self.folder = endpoints, pod, folder
        self.rules = rules or []  # the PrometheusRules' groups, loaded as the Operator would
        folder.mkdir(parents=True, exist_ok=True)
        self.targets: dict[str, list[tuple[str, str]]] = {job_name(e): [] for e in endpoints}
        self.process: ServiceProcess | None = None

    @property
    def url(self) -> str:
        return f"http://{self.pod.address}:{PORT}"

    def _config(self) -> dict:
        jobs = []
        for endpoint in self.endpoints:
            job = {
                "job_name": job_name(endpoint),
                "scrape_interval": TEST_INTERVAL, "scrape_timeout": TEST_INTERVAL,
                "metrics_path": endpoint.path, "scheme": endpoint.scheme,
                "file_sd_configs": [{"files": [str(self._targets_file(endpoint))], "refresh_interval": "1s"}],
            }
            if endpoint.bearer is not None:
                job["authorization"] = {"type": "Bearer", "credentials": endpoint.bearer}
            jobs.append(job)
        rule_files = [str(self.folder / "rules.yml")] if self.rules else []
        return {"global": {"scrape_interval": TEST_INTERVAL, "evaluation_interval": TEST_INTERVAL},
                "rule_files": rule_files, "scrape_configs": jobs}

    def _targets_file(self, endpoint: ScrapeEndpoint) -> Path:
        return self.folder / f"targets-{endpoint.monitor}-{endpoint.index}.json"

    def pods_set(self, pods: list[tuple[Pod, dict[str, str], dict[str, int], str]]) -> None:
        """The running pods (pod, labels, container ports, container name): each endpoint's targets
        are the pods its Service selects, on the port it names."""
        for endpoint in self.endpoints:
            groups = [
                {"targets": [f"{pod.address}:{ports[endpoint.port]}"],
                 "labels": {"job": endpoint.service, "namespace": endpoint.namespace,
                            "service": endpoint.service, "pod": pod.name, "container": container,
                            "endpoint": endpoint.port}}
                for pod, labels, ports, container in pods
                if endpoint.selects.items() <= labels.items() and endpoint.port in ports
            ]
            path = self._targets_file(endpoint)
            path.with_suffix(".tmp").write_text(json.dumps(groups))
            os.replace(path.with_suffix(".tmp"), path)  # Prometheus never reads half a file

    def start(self) -> Prometheus:
        (self.folder / "rules.yml").write_text(yaml.safe_dump({"groups": self.rules}))
        config = self.folder / "prometheus.yml"
        config.write_text(yaml.safe_dump(self._config()))
        argv = self.pod.command([prometheus_ensure(), f"--config.file={config}",
                                 f"--storage.tsdb.path={self.folder / 'data'}",
                                 f"--web.listen-address={self.pod.address}:{PORT}"])
        self.process = ServiceProcess("prometheus", argv, dict(os.environ), self.folder)
        wait_until(self._answers, timeout=60, what="Prometheus to answer its API")
        return self

    def _answers(self) -> bool:
        try:
            api_get(self.url, "/api/v1/status/buildinfo")
            return True
        except OSError:
            return False

    def active_targets(self) -> list[dict]:
        return list(api_get(self.url, "/api/v1/targets", state="active")["activeTargets"])

    def rule_groups(self) -> list[dict]:
        return list(api_get(self.url, "/api/v1/rules")["groups"])

    def query(self, promql: str) -> list[dict]:
        return list(api_get(self.url, "/api/v1/query", query=promql)["result"])

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop(timeout=20)
