"""deploy/kubernetes, rendered by kustomize (built from the Go module proxy, cached per machine)
and validated offline against Kubernetes 1.37's schemas (kubernetes-validate, strict: unknown
fields are errors). ServiceMonitor is a CRD those schemas lack: it is checked against a schema
of its own below, written from Prometheus Operator's v1 API for the fields we use."""

from __future__ import annotations

import subprocess
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml

from tests.support.tools import kustomize_ensure

ROOT = Path(__file__).resolve().parents[2]
KUBERNETES = ROOT / "deploy" / "kubernetes"
KUBERNETES_VERSION = "1.37"
README_RSS_MIB = 209  # the most one web process used in the README's benchmark

DURATION = {"type": "string", "pattern": r"^(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?$"}
SECRET_KEY_SELECTOR = {
    "type": "object", "additionalProperties": False, "required": ["key"],
    "properties": {"name": {"type": "string"}, "key": {"type": "string"}, "optional": {"type": "boolean"}},
}
SERVICE_MONITOR_SCHEMA = {
    "type": "object", "additionalProperties": False, "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"},
        "kind": {"const": "ServiceMonitor"},
        "metadata": {"type": "object", "required": ["name"]},
        "spec": {
            "type": "object", "additionalProperties": False, "required": ["endpoints", "selector"],
            "properties": {
                "selector": {
                    "type": "object", "additionalProperties": False,
                    "properties": {"matchLabels": {"type": "object",
                                                   "additionalProperties": {"type": "string"}}},
                },
                "endpoints": {"type": "array", "minItems": 1, "items": {
                    "type": "object", "additionalProperties": False,
                    "properties": {
                        "port": {"type": "string"}, "path": {"type": "string"}, "interval": DURATION,
                        "authorization": {
                            "type": "object", "additionalProperties": False,
                            "properties": {"type": {"type": "string"}, "credentials": SECRET_KEY_SELECTOR},
                        },
                    },
                }},
            },
        },
    },
}


def render(path: Path) -> list[dict]:
    done = subprocess.run([kustomize_ensure(), "build", str(path)], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


@pytest.fixture(scope="module")
def base() -> list[dict]:
    return render(KUBERNETES / "base")


@pytest.fixture(scope="module")
def production() -> list[dict]:
    return render(KUBERNETES / "overlays" / "production")


def validate(doc: dict) -> None:
    if doc["kind"] == "ServiceMonitor":
        jsonschema.validate(doc, SERVICE_MONITOR_SCHEMA)
    else:
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def one(docs: list[dict], kind: str, name_start: str) -> dict:
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"].startswith(name_start)]
    assert len(found) == 1, f"{kind} {name_start}: {len(found)}"
    return found[0]


def config_of(docs: list[dict]) -> dict[str, str]:
    return one(docs, "ConfigMap", "aetherlink-config")["data"]


@pytest.mark.parametrize("which", ["base", "production"])
def test_every_rendered_resource_is_valid(which, request):
    docs = request.getfixturevalue(which)
    kinds = sorted(doc["kind"] for doc in docs)
    expected = ["ConfigMap", "Deployment", "Deployment", "Ingress", "NetworkPolicy", "NetworkPolicy",
                "PodDisruptionBudget", "Service", "Service"]
    if which == "production":
        expected = sorted([*expected, "Namespace", "ServiceMonitor"])
    assert kinds == expected
    for doc in docs:
        validate(doc)


def test_the_secret_example_is_valid_and_is_what_the_pods_read(base):
    secret = yaml.safe_load((KUBERNETES / "secret.example.yaml").read_text())
    validate(secret)
    assert "DJANGO_SECRET_KEY" in secret["stringData"]
    for name in ("aetherlink-web", "aetherlink-consumer"):
        pod = one(base, "Deployment", name)["spec"]["template"]["spec"]
        for container in pod.get("initContainers", []) + pod["containers"]:
            sources = [s.get("secretRef", {}).get("name") for s in container["envFrom"]]
            assert secret["metadata"]["name"] in sources, container["name"]


def test_strict_validation_catches_a_misspelt_field(base):
    web = one(base, "Deployment", "aetherlink-web")
    broken = yaml.safe_load(yaml.safe_dump(web))
    broken["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(broken)


def test_web_probes_and_a_rollout_that_lets_streams_say_goodbye(base):
    pod = one(base, "Deployment", "aetherlink-web")["spec"]["template"]["spec"]
    (web,) = pod["containers"]
    config = config_of(base)
    assert web["ports"] == [{"name": "http", "containerPort": int(config["PORT"])}]
    assert web["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert web["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    pre_stop = web["lifecycle"]["preStop"]["sleep"]["seconds"]
    grace = float(config["SSE_SHUTDOWN_GRACE"])
    assert pod["terminationGracePeriodSeconds"] >= pre_stop + grace + 5
    assert [c["command"] for c in pod["initContainers"]] == [["init.sh"]]
    assert {"name": "data", "mountPath": "/data"} in web["volumeMounts"]
    assert config["DATABASE_URL"] == "sqlite:////data/db.sqlite3"


def test_web_resources_follow_the_benchmark(base):
    (web,) = one(base, "Deployment", "aetherlink-web")["spec"]["template"]["spec"]["containers"]
    resources = web["resources"]
    assert "cpu" not in resources["limits"]  # one event loop; a CPU limit would only throttle it
    mebibytes = {k: int(v.removesuffix("Mi")) for k, v in (
        ("request", resources["requests"]["memory"]), ("limit", resources["limits"]["memory"]))}
    assert mebibytes["request"] >= README_RSS_MIB and mebibytes["limit"] >= 2 * README_RSS_MIB
    assert config_of(base)["SSE_MAX_STREAMS"] == "2000"  # the benchmarked load per process


@pytest.mark.parametrize("which", ["base", "production"])
def test_never_more_consumers_than_partitions_and_a_budget_below_the_web_replicas(which, request):
    docs = request.getfixturevalue(which)
    consumers = one(docs, "Deployment", "aetherlink-consumer")["spec"]["replicas"]
    assert 1 <= consumers <= int(config_of(docs)["KAFKA_TOPIC_PARTITIONS"])
    web = one(docs, "Deployment", "aetherlink-web")
    budget = one(docs, "PodDisruptionBudget", "aetherlink-web")["spec"]
    assert budget["maxUnavailable"] < web["spec"]["replicas"]
    assert budget["selector"]["matchLabels"] == web["spec"]["selector"]["matchLabels"]


def test_service_ingress_and_network_policy_reach_the_web_pods(base):
    web = one(base, "Deployment", "aetherlink-web")
    labels = web["spec"]["template"]["metadata"]["labels"]
    service = one(base, "Service", "aetherlink-web")
    assert service["spec"]["selector"].items() <= labels.items()
    assert service["spec"]["ports"][0]["targetPort"] == "http"
    ingress = one(base, "Ingress", "aetherlink-web")
    annotations = ingress["metadata"]["annotations"]
    assert annotations["nginx.ingress.kubernetes.io/proxy-buffering"] == "off"
    heartbeat = float(config_of(base)["SSE_HEARTBEAT_INTERVAL"])
    assert int(annotations["nginx.ingress.kubernetes.io/proxy-read-timeout"]) >= 4 * heartbeat
    assert ingress["spec"]["ingressClassName"] == "nginx"
    (path,) = ingress["spec"]["rules"][0]["http"]["paths"]
    assert path["backend"]["service"] == {"name": service["metadata"]["name"], "port": {"name": "http"}}
    policy = one(base, "NetworkPolicy", "aetherlink-web")["spec"]
    assert policy["podSelector"]["matchLabels"].items() <= labels.items()
    assert policy["ingress"][0]["ports"] == [{"protocol": "TCP", "port": int(config_of(base)["PORT"])}]
    namespaces = [p["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
                  for p in policy["ingress"][0]["from"]]
    assert "ingress-nginx" in namespaces


def test_production_overlay(production):
    for doc in production:
        if doc["kind"] != "Namespace":
            assert doc["metadata"]["namespace"] == "aetherlink", doc["metadata"]["name"]
    web = one(production, "Deployment", "aetherlink-web")
    assert web["spec"]["replicas"] == 3
    images = {c["image"] for c in web["spec"]["template"]["spec"]["containers"]}
    assert images == {"registry.example.com/aetherlink-crm-events:0.1.0"}
    config = config_of(production)
    assert config["DJANGO_SECURE_HSTS_SECONDS"] == "31536000"
    assert config["SSE_AUTH_MODE"] == "session"
    monitor = one(production, "ServiceMonitor", "aetherlink")
    services = [d for d in production if d["kind"] == "Service"]
    ports = {p["name"] for s in services for p in s["spec"]["ports"]}
    assert {e["port"] for e in monitor["spec"]["endpoints"]} <= ports
    for service in services:  # the monitor's selector finds both Services
        assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
