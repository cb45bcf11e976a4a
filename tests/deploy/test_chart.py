"""deploy/helm/crm-events, the one source of the Kubernetes manifests, rendered by helm (built from
the Go module proxy, cached per machine) with the three values files shipped in its ci/ folder.

Every rendered object is validated strictly (unknown fields are errors) against the oldest
Kubernetes the chart supports and the newest kubernetes-validate ships; the custom resources
(ServiceMonitor, PrometheusRule, HTTPRoute) against the CRD schemas their projects publish
(tests/support/crds.py). Then what the objects mean: each pod's settings, probes, shutdown,
budgets, autoscaling, monitoring, routes and network policies."""

from __future__ import annotations

import functools
import json
import re
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from crm_events.metrics import STREAMS_CONNECTED
from tests.support.chart import (
    CHART,
    EXAMPLES,
    NEWEST_KUBERNETES,
    OLDEST_KUBERNETES,
    ROOT,
    chart_environment,
    chart_render,
    chart_template,
    helm,
)
from tests.support.crds import crd_validate
from tests.support.promtool import promtool_find

ALERTS = ROOT / "docker" / "monitoring" / "prometheus"
# The release is RELEASE; everything-values.yaml sets fullnameOverride.
FULLNAME = {"minimal": "aetherlink-crm-events", "production": "aetherlink-crm-events",
            "everything": "crm-events"}
CUSTOM_KINDS = {"ServiceMonitor", "PrometheusRule", "HTTPRoute"}
KINDS = {
    "minimal": ["ConfigMap", "Deployment", "Deployment", "Job", *["NetworkPolicy"] * 4,
                "PodDisruptionBudget", "PodDisruptionBudget", "Service", "Service"],
}
KINDS["production"] = sorted([*KINDS["minimal"], "Ingress", "PrometheusRule", *["ServiceMonitor"] * 2])
KINDS["everything"] = sorted([*KINDS["production"], "HTTPRoute", "HorizontalPodAutoscaler", *["Secret"] * 2])
# Read by Django's `createsuperuser --noinput` (docker/init.sh runs it) rather than our code.
CREATESUPERUSER_SETTINGS = {"DJANGO_SUPERUSER_PASSWORD", "DJANGO_SUPERUSER_EMAIL"}
SECRET_SETTINGS = {"DJANGO_SECRET_KEY", "DATABASE_URL", "METRICS_TOKEN", "DJANGO_SUPERUSER_USERNAME",
                   "DJANGO_SUPERUSER_PASSWORD", "DJANGO_SUPERUSER_EMAIL"}
NOT_PUBLIC = ["/metrics", "/status", "/readyz", "/healthz", "/metrics/", "/statusx", "/admin-x"]
PUBLIC = ["/", "/crm-events", "/asyncapi.yaml", "/favicon.ico", "/admin", "/admin/", "/admin/live-events/",
          "/static/admin/css/base.css"]


@pytest.fixture(scope="module", params=sorted(EXAMPLES))
def example(request) -> tuple[str, list[dict]]:
    return request.param, chart_render(EXAMPLES[request.param])


def values_of(name: str) -> dict:
    defaults = yaml.safe_load((CHART / "values.yaml").read_text())
    return _merged(defaults, yaml.safe_load(EXAMPLES[name].read_text()))


def _merged(base: Any, override: Any) -> Any:
    if isinstance(base, dict) and isinstance(override, dict):
        return {**base, **{k: _merged(base.get(k), v) for k, v in override.items()}}
    return override


def one(docs: list[dict], kind: str, name: str) -> dict:
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind} {name}: {len(found)}"
    return found[0]


def pod_of(docs: list[dict], kind: str, name: str) -> dict:
    return one(docs, kind, name)["spec"]["template"]["spec"]


def validate(doc: dict, kube_version: str) -> None:
    if doc["kind"] in CUSTOM_KINDS:
        crd_validate(doc)
    else:
        kubernetes_validate.validate(doc, kube_version.rsplit(".", 1)[0], strict=True)


def settings_read() -> set[str]:
    """Every variable name aetherlink/ (settings.py, the web command) or the image's scripts read."""
    names: set[str] = set()
    for path in (ROOT / "aetherlink").rglob("*.py"):
        names |= set(re.findall(r'"([A-Z][A-Z0-9_]+)"', path.read_text()))
    for path in (ROOT / "docker").glob("*.sh"):
        names |= set(re.findall(r"\$\{?([A-Z][A-Z0-9_]+)", path.read_text()))
    return names


def containers(docs: list[dict]) -> list[tuple[str, dict]]:
    return [(f"{d['kind']}/{d['metadata']['name']}", c) for d in docs if d["kind"] in {"Deployment", "Job"}
            for c in d["spec"]["template"]["spec"]["containers"]]


# --- helm lint, helm's refusals, strict validation ---------------------------------------------


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_helm_lint_strict(name):
    for kube_version in (OLDEST_KUBERNETES, NEWEST_KUBERNETES):
        done = helm("lint", "--strict", str(CHART), "--values", str(EXAMPLES[name]),
                    "--kube-version", kube_version)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "0 chart(s) failed" in done.stdout


@pytest.mark.parametrize("kube_version", [OLDEST_KUBERNETES, NEWEST_KUBERNETES])
@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_every_rendered_object_is_valid_on_the_oldest_and_the_newest_kubernetes(name, kube_version):
    docs = chart_render(EXAMPLES[name], kube_version=kube_version)
    assert sorted(d["kind"] for d in docs) == KINDS[name]
    for doc in docs:
        validate(doc, kube_version)


def test_strict_validation_catches_a_misspelt_field_in_every_kind_of_schema():
    docs = chart_render(EXAMPLES["everything"])
    for kind, path in (("Deployment", ("spec", "template", "spec", "containers", 0)),
                       ("ServiceMonitor", ("spec", "endpoints", 0)), ("HTTPRoute", ("spec", "rules", 0)),
                       ("PrometheusRule", ("spec", "groups", 0, "rules", 0))):
        broken = json.loads(json.dumps(next(d for d in docs if d["kind"] == kind)))
        place = broken
        for step in path:
            place = place[step]
        place["readinesProbe" if kind == "Deployment" else "intervall"] = {}
        with pytest.raises((kubernetes_validate.ValidationError, jsonschema.ValidationError)):
            validate(broken, NEWEST_KUBERNETES)


def test_kubernetes_older_than_the_oldest_supported_is_refused():
    done = chart_template(EXAMPLES["minimal"], kube_version="1.29.9")
    assert done.returncode != 0
    assert "incompatible with Kubernetes v1.29.9" in done.stderr


@pytest.mark.parametrize("assignment, complaint", [
    ("web.replica=3", "additional properties 'replica' not allowed"),
    ("ingress.classname=nginx", "additional properties 'classname' not allowed"),
    ("config.kafka_brokers=x", "does not match pattern"),
    ("config.PORT=8000", "PORT"),
    ("config.DATABASE_URL=postgres://x", "DATABASE_URL"),
    ("web.workers=0", "workers"),
    ("image.digest=latest", "digest"),
])
def test_the_values_schema_refuses_misspelt_and_misplaced_keys(assignment, complaint):
    done = chart_template(EXAMPLES["minimal"], sets=(assignment,))
    assert done.returncode != 0, assignment
    assert "values don't meet the specifications of the schema" in done.stderr
    assert complaint in done.stderr


def test_without_an_existing_secret_the_required_secrets_must_be_given():
    done = chart_template(sets=("secrets.DJANGO_SECRET_KEY=x",))
    assert done.returncode != 0
    assert "secrets.DATABASE_URL is required when existingSecret is empty" in done.stderr


def test_a_service_monitor_needs_the_metrics_token_in_the_chart_made_secret():
    done = chart_template(sets=("secrets.DJANGO_SECRET_KEY=x", "secrets.DATABASE_URL=postgres://h/d",
                                "metrics.serviceMonitor.enabled=true"))
    assert done.returncode != 0
    assert "secrets.METRICS_TOKEN is required with metrics.serviceMonitor.enabled" in done.stderr


def test_the_values_schema_closes_every_object_the_chart_owns():
    schema = json.loads((CHART / "values.schema.json").read_text())
    # Objects passed to Kubernetes as they are (affinity, resources' maps, ...) stay open.
    open_objects = []

    def walk(node: dict, where: str) -> None:
        if node.get("type") == "object" and "properties" in node:
            if node.get("additionalProperties") is not False:
                open_objects.append(where)
            for key, child in node["properties"].items():
                walk(child, f"{where}.{key}")

    walk(schema, "values")
    assert open_objects == []
    defaults = yaml.safe_load((CHART / "values.yaml").read_text())
    jsonschema.validate(defaults, schema)
    for path in EXAMPLES.values():
        jsonschema.validate(_merged(defaults, yaml.safe_load(path.read_text())), schema)


def test_the_packaged_chart_carries_the_alert_rules_themselves(tmp_path: Path):
    done = helm("package", str(CHART), "--destination", str(tmp_path))
    assert done.returncode == 0, done.stderr
    (package,) = tmp_path.glob("crm-events-*.tgz")
    with tarfile.open(package) as archive:
        member = archive.extractfile("crm-events/files/alerts.yml")
        assert member is not None
        assert member.read() == (ALERTS / "alerts.yml").read_bytes()


@pytest.mark.parametrize("assignment, complaint", [
    ("ingress.hosts={crm-events.example.com,other.example.com}", "ingress.hosts: other.example.com is not"),
    ("httpRoute.hostnames={elsewhere.example.org}", "httpRoute.hostnames: elsewhere.example.org is not"),
])
def test_a_published_host_the_web_pods_would_refuse_is_refused(assignment, complaint):
    done = chart_template(EXAMPLES["everything"], sets=(assignment,))
    assert done.returncode != 0
    refusal = f"{complaint} in config.DJANGO_ALLOWED_HOSTS, so the web pods would answer it with 400"
    assert refusal in done.stderr
    # Django's ".domain" form admits the domain and its subdomains.
    assert chart_template(EXAMPLES["everything"], sets=("httpRoute.hostnames={a.events.example.com}",)
                          ).returncode == 0


def test_a_grace_period_too_short_for_the_goodbye_is_refused():
    done = chart_template(EXAMPLES["minimal"], sets=("config.SSE_SHUTDOWN_GRACE=15.5",))
    assert done.returncode != 0
    assert ("web.terminationGracePeriodSeconds (20) must exceed web.preStopSleepSeconds plus "
            "SSE_SHUTDOWN_GRACE (21)") in done.stderr
    longer = ("config.SSE_SHUTDOWN_GRACE=15.5", "web.terminationGracePeriodSeconds=22")
    assert chart_template(EXAMPLES["minimal"], sets=longer).returncode == 0


def test_never_more_consumers_than_partitions():
    done = chart_template(EXAMPLES["minimal"], sets=("consumer.replicas=4",))
    assert done.returncode != 0
    assert "consumer.replicas (4) exceeds config.KAFKA_TOPIC_PARTITIONS (3)" in done.stderr


# --- what each pod gets --------------------------------------------------------------------------


def unread_variables(docs: list[dict]) -> dict[str, set[str]]:
    read = settings_read() | CREATESUPERUSER_SETTINGS
    found = {where: set(chart_environment(docs, container)) - read for where, container in containers(docs)}
    return {where: names for where, names in found.items() if names}


def test_every_variable_the_chart_sets_is_a_setting_the_code_reads(example):
    _, docs = example
    assert unread_variables(docs) == {}


def test_a_variable_no_code_reads_is_noticed():
    docs = chart_render(EXAMPLES["minimal"], sets=("config.KAFKA_BROKER=kafka:9092",))
    assert list(unread_variables(docs).values()) == [{"KAFKA_BROKER"}] * 3
    assert len(unread_variables(docs)) == 3  # web, consumer and the migration Job


def test_every_container_gets_the_settings_and_the_secret(example):
    name, docs = example
    values = values_of(name)
    fullname = FULLNAME[name]
    secret = values["existingSecret"] or fullname
    for where, container in containers(docs):
        env = chart_environment(docs, container)
        assert {k: env[k] for k in values["config"]} == values["config"], where
        sources = [s["secretRef"]["name"] for s in container["envFrom"] if "secretRef" in s]
        job_secret = f"{fullname}-migrate" if not values["existingSecret"] else secret
        assert sources[0] == (job_secret if where.startswith("Job/") else secret), where
        for extra in values["extraEnv"]:
            assert extra in container["env"], where
        if values["extraEnvFrom"]:  # after the chart's own, so they win
            assert container["envFrom"][-len(values["extraEnvFrom"]):] == values["extraEnvFrom"], where
        for mount in values["extraVolumeMounts"]:
            assert mount in container["volumeMounts"], where
    made = [d for d in docs if d["kind"] == "Secret"]
    if values["existingSecret"]:
        assert made == []
    else:
        assert {d["metadata"]["name"] for d in made} == {fullname, f"{fullname}-migrate"}
        for doc in made:
            assert doc["stringData"] == values["secrets"]
            assert set(doc["stringData"]) == SECRET_SETTINGS


def test_the_chart_sets_the_port_the_workers_and_the_consumer_metrics_address(example):
    name, docs = example
    values = values_of(name)
    fullname = FULLNAME[name]
    (web,) = pod_of(docs, "Deployment", f"{fullname}-web")["containers"]
    assert chart_environment(docs, web)["PORT"] == "9010"
    assert chart_environment(docs, web)["WEB_WORKERS"] == str(values["web"]["workers"])
    assert web["ports"] == [{"name": "http", "containerPort": 9010, "protocol": "TCP"}]
    (consumer,) = pod_of(docs, "Deployment", f"{fullname}-consumer")["containers"]
    env = chart_environment(docs, consumer)
    assert env["CONSUMER_METRICS_ADDRESS"] == "0.0.0.0"
    assert consumer["ports"] == [{"name": "metrics", "containerPort": int(env["CONSUMER_METRICS_PORT"]),
                                  "protocol": "TCP"}]


def test_images_follow_the_app_version_or_the_digest(example):
    name, docs = example
    image = values_of(name)["image"]
    app_version = yaml.safe_load((CHART / "Chart.yaml").read_text())["appVersion"]
    expected = (f"{image['repository']}@{image['digest']}" if image["digest"]
                else f"{image['repository']}:{image['tag'] or app_version}")
    for where, container in containers(docs):
        assert container["image"] == expected, where
        assert container["imagePullPolicy"] == image["pullPolicy"]


def test_every_pod_meets_the_restricted_pod_security_standard(example):
    _, docs = example
    for doc in (d for d in docs if d["kind"] in {"Deployment", "Job"}):
        pod = doc["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        assert pod["automountServiceAccountToken"] is False
        for container in pod["containers"]:
            assert container["securityContext"] == {"allowPrivilegeEscalation": False,
                                                    "readOnlyRootFilesystem": True,
                                                    "capabilities": {"drop": ["ALL"]}}
            assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]


def test_probes(example):
    name, docs = example
    fullname = FULLNAME[name]
    (web,) = pod_of(docs, "Deployment", f"{fullname}-web")["containers"]
    assert web["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert web["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert web["startupProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    (consumer,) = pod_of(docs, "Deployment", f"{fullname}-consumer")["containers"]
    assert consumer["livenessProbe"]["httpGet"] == {"path": "/livez", "port": "metrics"}
    assert consumer["startupProbe"]["httpGet"] == {"path": "/livez", "port": "metrics"}
    assert "tcpSocket" not in consumer["livenessProbe"]


def test_a_rollout_lets_every_stream_say_goodbye_before_the_kill(example):
    name, docs = example
    pod = pod_of(docs, "Deployment", f"{FULLNAME[name]}-web")
    pre_stop = pod["containers"][0]["lifecycle"]["preStop"]["sleep"]["seconds"]
    grace = float(values_of(name)["config"]["SSE_SHUTDOWN_GRACE"])
    assert pre_stop + grace < pod["terminationGracePeriodSeconds"]
    strategy = one(docs, "Deployment", f"{FULLNAME[name]}-web")["spec"]["strategy"]
    assert strategy["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": 0}


def test_pods_spread_across_zones_then_nodes_unless_told_otherwise(example):
    name, docs = example
    values = values_of(name)
    for component in ("web", "consumer"):
        deployment = one(docs, "Deployment", f"{FULLNAME[name]}-{component}")
        spread = deployment["spec"]["template"]["spec"]["topologySpreadConstraints"]
        if values[component]["topologySpreadConstraints"]:
            assert spread == values[component]["topologySpreadConstraints"]
            continue
        assert [c["topologyKey"] for c in spread] == ["topology.kubernetes.io/zone", "kubernetes.io/hostname"]
        for constraint in spread:
            assert constraint["labelSelector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]


def test_the_migration_job_runs_init_sh_before_install_and_upgrade(example):
    name, docs = example
    fullname = FULLNAME[name]
    job = one(docs, "Job", f"{fullname}-migrate")
    hooks = job["metadata"]["annotations"]
    assert hooks["helm.sh/hook"] == "pre-install,pre-upgrade"
    assert job["spec"]["template"]["spec"]["containers"][0]["command"] == ["init.sh"]
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    secret = [d for d in docs if d["kind"] == "Secret" and d["metadata"]["name"] == f"{fullname}-migrate"]
    for doc in secret:  # made before the Job, its own copy: the release's Secret does not exist yet
        annotations = doc["metadata"]["annotations"]
        assert annotations["helm.sh/hook"] == hooks["helm.sh/hook"]
        assert int(annotations["helm.sh/hook-weight"]) < int(hooks["helm.sh/hook-weight"])


# --- budgets and autoscaling ---------------------------------------------------------------------


def test_disruption_budgets_cover_both_deployments_and_leave_pods_serving(example):
    name, docs = example
    values = values_of(name)
    for component in ("web", "consumer"):
        deployment = one(docs, "Deployment", f"{FULLNAME[name]}-{component}")
        budget = one(docs, "PodDisruptionBudget", f"{FULLNAME[name]}-{component}")["spec"]
        assert budget["selector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]
        assert budget["maxUnavailable"] == 1
    replicas = (values["web"]["autoscaling"]["minReplicas"] if values["web"]["autoscaling"]["enabled"]
                else values["web"]["replicas"])
    assert replicas > 1


def test_the_autoscaler_scales_the_web_deployment_on_cpu_and_streams_per_pod():
    docs = chart_render(EXAMPLES["everything"])
    web = one(docs, "Deployment", "crm-events-web")
    assert "replicas" not in web["spec"]  # the autoscaler's to set
    hpa = one(docs, "HorizontalPodAutoscaler", "crm-events-web")["spec"]
    assert hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "crm-events-web"}
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (3, 12)
    cpu, streams = hpa["metrics"]
    assert cpu["resource"] == {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}}
    assert streams["pods"]["metric"]["name"] == STREAMS_CONNECTED.describe()[0].name
    assert streams["pods"]["target"] == {"type": "AverageValue", "averageValue": "1500"}
    assert hpa["behavior"]["scaleDown"]["policies"] == [{"type": "Pods", "value": 1, "periodSeconds": 300}]


# --- monitoring ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["production", "everything"])
def test_the_service_monitors_select_the_services_and_carry_the_labels(name):
    docs = chart_render(EXAMPLES[name])
    values = values_of(name)
    for component, port in (("web", "http"), ("consumer", "metrics")):
        monitor = one(docs, "ServiceMonitor", f"{FULLNAME[name]}-{component}")
        assert values["metrics"]["serviceMonitor"]["labels"].items() <= monitor["metadata"]["labels"].items()
        selector = monitor["spec"]["selector"]["matchLabels"]
        services = [s for s in docs if s["kind"] == "Service"]
        selected = [s for s in services if selector.items() <= s["metadata"]["labels"].items()]
        assert [s["metadata"]["name"] for s in selected] == [f"{FULLNAME[name]}-{component}"]
        (endpoint,) = monitor["spec"]["endpoints"]
        assert (endpoint["port"], endpoint["path"], endpoint["scheme"]) == (port, "/metrics", "http")
        assert port in [p["name"] for p in selected[0]["spec"]["ports"]]
        assert "jobLabel" not in monitor["spec"]  # so the job is the Service's name
    web = one(docs, "ServiceMonitor", f"{FULLNAME[name]}-web")["spec"]["endpoints"][0]
    secret = values["existingSecret"] or FULLNAME[name]
    assert web["authorization"] == {"type": "Bearer", "credentials": {"name": secret, "key": "METRICS_TOKEN"}}


def rule_groups(docs: list[dict]) -> list[dict]:
    (rule,) = [d for d in docs if d["kind"] == "PrometheusRule"]
    return rule["spec"]["groups"]


@pytest.mark.parametrize("name", ["production", "everything"])
def test_the_prometheus_rule_is_the_compose_rules_with_the_operators_job_names(name):
    docs = chart_render(EXAMPLES[name])
    groups = rule_groups(docs)
    exprs = [rule["expr"] for group in groups for rule in group["rules"]]
    jobs = {job for expr in exprs for job in re.findall(r'job="([^"]+)"', expr)}
    assert jobs == {f"{FULLNAME[name]}-web"}
    assert jobs <= {s["metadata"]["name"] for s in docs if s["kind"] == "Service"}
    compose = yaml.safe_load((ALERTS / "alerts.yml").read_text())["groups"]
    text = json.dumps(compose).replace('job=\\"crm-events-web\\"', f'job=\\"{FULLNAME[name]}-web\\"')
    assert groups == json.loads(text)
    labels = values_of(name)["metrics"]["prometheusRule"]["labels"]
    (rule,) = [d for d in docs if d["kind"] == "PrometheusRule"]
    assert labels.items() <= rule["metadata"]["labels"].items()


def test_promtool_checks_and_unit_tests_the_rendered_rules(tmp_path: Path):
    promtool = promtool_find()
    if promtool is None:
        pytest.skip("promtool is not on this machine (make promtool builds it)")
    groups = rule_groups(chart_render(EXAMPLES["production"]))
    rules = tmp_path / "alerts.yml"
    rules.write_text(yaml.safe_dump({"groups": groups}))
    done = subprocess.run([promtool, "check", "rules", str(rules)], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    # alerts.test.yml's series, labelled as the Operator labels them: the alerts still fire.
    unit = (ALERTS / "alerts.test.yml").read_text().replace("crm-events-web", f"{FULLNAME['production']}-web")
    (tmp_path / "alerts.test.yml").write_text(unit)
    done = subprocess.run([promtool, "test", "rules", str(tmp_path / "alerts.test.yml")], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


# --- routes and network policies -----------------------------------------------------------------


def routed(paths: list[tuple[str, str]], request_path: str) -> bool:
    """Whether a request path matches one of (path, type): Kubernetes' Exact and Prefix semantics,
    which the Gateway API's Exact and PathPrefix share (a prefix matches whole path elements)."""
    for path, kind in paths:
        if kind == "Exact" and request_path == path:
            return True
        if kind in {"Prefix", "PathPrefix"}:
            prefix = path.rstrip("/")
            if request_path == prefix or request_path.startswith(prefix + "/"):
                return True
    return False


@functools.cache
def published_paths() -> dict[str, list[tuple[str, str]]]:
    """The (path, type) pairs the everything example's Ingress (first host) and HTTPRoute route."""
    docs = chart_render(EXAMPLES["everything"])
    ingress = one(docs, "Ingress", "crm-events-web")["spec"]["rules"][0]["http"]["paths"]
    route = one(docs, "HTTPRoute", "crm-events-web")["spec"]["rules"]
    return {"Ingress": [(p["path"], p["pathType"]) for p in ingress],
            "HTTPRoute": [(m["path"]["value"], m["path"]["type"]) for r in route for m in r["matches"]]}


SEGMENT = st.text(alphabet=st.characters(codec="ascii", exclude_characters="/?#", min_codepoint=33),
                  max_size=12)
APP_PATHS = {"/", "/crm-events", "/asyncapi.yaml", "/favicon.ico"}


@given(root=st.sampled_from(["/metrics", "/status", "/readyz", "/healthz"]),
       tail=st.lists(SEGMENT, max_size=3).map(lambda parts: "".join("/" + p for p in parts)))
def test_nothing_under_the_private_endpoints_is_routed(root, tail):
    for kind, paths in published_paths().items():
        assert not routed(paths, root + tail), kind


@given(path=st.lists(SEGMENT, min_size=1, max_size=4).map(lambda parts: "".join("/" + p for p in parts)))
def test_only_the_app_s_own_paths_are_routed(path):
    for kind, paths in published_paths().items():
        if routed(paths, path):
            top = path.split("/")[1]
            assert path in APP_PATHS or top in {"admin", "static"}, kind


def test_the_ingress_publishes_the_app_but_never_metrics_or_status():
    docs = chart_render(EXAMPLES["everything"])
    ingress = one(docs, "Ingress", "crm-events-web")
    annotations = ingress["metadata"]["annotations"]
    assert annotations["nginx.ingress.kubernetes.io/proxy-buffering"] == "off"
    heartbeat = float(values_of("everything")["config"].get("SSE_HEARTBEAT_INTERVAL", 15))
    assert int(annotations["nginx.ingress.kubernetes.io/proxy-read-timeout"]) >= 4 * heartbeat
    assert annotations["cert-manager.io/cluster-issuer"] == "letsencrypt"
    assert ingress["spec"]["ingressClassName"] == "nginx"
    assert [r["host"] for r in ingress["spec"]["rules"]] == ["crm-events.example.com", "events.example.com"]
    assert ingress["spec"]["tls"] == values_of("everything")["ingress"]["tls"]
    for rule in ingress["spec"]["rules"]:
        paths = [(p["path"], p["pathType"]) for p in rule["http"]["paths"]]
        for p in rule["http"]["paths"]:
            assert p["backend"]["service"] == {"name": "crm-events-web", "port": {"name": "http"}}
        assert [path for path in PUBLIC if not routed(paths, path)] == []
        assert [path for path in NOT_PUBLIC if routed(paths, path)] == []


def test_the_http_route_publishes_the_same_paths_and_never_cuts_a_stream():
    docs = chart_render(EXAMPLES["everything"])
    route = one(docs, "HTTPRoute", "crm-events-web")["spec"]
    assert route["parentRefs"] == [{"name": "public", "namespace": "gateway", "sectionName": "https"}]
    paths = [(m["path"]["value"], m["path"]["type"]) for r in route["rules"] for m in r["matches"]]
    assert [path for path in PUBLIC if not routed(paths, path)] == []
    assert [path for path in NOT_PUBLIC if routed(paths, path)] == []
    for rule in route["rules"]:
        assert rule["backendRefs"] == [{"name": "crm-events-web", "port": 80}]
    (stream,) = [r for r in route["rules"] if r["matches"][0]["path"]["value"] == "/crm-events"]
    assert stream["timeouts"] == {"request": "0s"}


def test_network_policies_admit_the_ingress_and_prometheus_and_let_out_what_the_values_name(example):
    name, docs = example
    values = values_of(name)["networkPolicy"]
    fullname = FULLNAME[name]
    web = one(docs, "NetworkPolicy", f"{fullname}-web")["spec"]
    labels = one(docs, "Deployment", f"{fullname}-web")["spec"]["template"]["metadata"]["labels"]
    assert web["podSelector"]["matchLabels"].items() <= labels.items()
    assert web["ingress"] == [{"from": values["ingressFrom"] + values["prometheusFrom"],
                               "ports": [{"protocol": "TCP", "port": 9010}]}]
    consumer = one(docs, "NetworkPolicy", f"{fullname}-consumer")["spec"]
    (port,) = pod_of(docs, "Deployment", f"{fullname}-consumer")["containers"][0]["ports"]
    assert consumer["ingress"] == [{"from": values["prometheusFrom"],
                                    "ports": [{"protocol": "TCP", "port": port["containerPort"]}]}]
    egress = one(docs, "NetworkPolicy", f"{fullname}-egress")["spec"]
    assert egress["policyTypes"] == ["Egress"]
    for kind in ("Deployment", "Job"):  # every pod of the release, the migration Job's too
        for doc in (d for d in docs if d["kind"] == kind):
            pod_labels = doc["spec"]["template"]["metadata"]["labels"]
            assert egress["podSelector"]["matchLabels"].items() <= pod_labels.items()
    # The Job runs before the release's policies exist: its own copy is made just before it.
    hook = one(docs, "NetworkPolicy", f"{fullname}-migrate-egress")
    job = one(docs, "Job", f"{fullname}-migrate")
    assert hook["spec"]["egress"] == egress["egress"]
    job_labels = job["spec"]["template"]["metadata"]["labels"]
    assert hook["spec"]["podSelector"]["matchLabels"].items() <= job_labels.items()
    hook_weight = int(hook["metadata"]["annotations"]["helm.sh/hook-weight"])
    assert hook_weight < int(job["metadata"]["annotations"]["helm.sh/hook-weight"])
    dns, *services = egress["egress"]
    assert dns["ports"] == [{"protocol": p, "port": 53} for p in ("UDP", "TCP")]
    assert dns["to"] == values["egress"]["dns"]["to"]
    wanted = [values["egress"][k] for k in ("kafka", "redis", "postgresql")]
    for rule, want in zip(services, wanted, strict=False):
        assert [p["port"] for p in rule["ports"]] == want["ports"]
        assert rule.get("to", []) == want["to"]
    assert services[len(wanted):] == values["egress"]["extra"]
