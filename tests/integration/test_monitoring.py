"""The monitoring profile (docker/compose.yaml, docker/monitoring/): its files hang together,
the alert rules and the dashboard's PromQL parse (promtool when this machine has it, else our
own reading), and every metric and label they use is exported by a real web process or
`consume_events` (CONSUMER_METRICS_PORT) after some traffic."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import time
from pathlib import Path

import jwt
import pytest
import yaml
from prometheus_client.metrics import MetricWrapperBase

from crm_events import metrics
from scripts.servers import free_port
from tests.integration.conftest import json_values, produce, topic_create
from tests.support.compose import compose_resolve
from tests.support.foreign_producer import ForeignRecord, RawHeaderName, foreign_produce
from tests.support.processes import ROOT, http_get, wait_until
from tests.support.prometheus import metric_names, metric_value, metrics_text
from tests.support.promtool import promtool_find
from tests.support.sse_client import SseConnection

pytestmark = pytest.mark.integration

MONITORING = ROOT / "docker" / "monitoring"
COMPOSE = yaml.safe_load((ROOT / "docker" / "compose.yaml").read_text())
RULES = yaml.safe_load((MONITORING / "prometheus" / "alerts.yml").read_text())
DASHBOARD = json.loads((MONITORING / "grafana" / "dashboards" / "crm-events.json").read_text())
# Series Prometheus makes itself for every target, not exported by any process.
PROMETHEUS_SERIES = {"up"}
PROMETHEUS_LABELS = {"instance", "job"}
PROMQL_FUNCTIONS = {"sum", "max", "min", "avg", "count", "rate", "increase", "histogram_quantile", "absent"}
PROMQL_KEYWORDS = {"and", "or", "unless", "bool", "offset", "on", "ignoring", "group_left", "group_right"}
JWT_KEY = "monitoring-test-secret-that-is-at-least-32-bytes"


def rule_expressions() -> dict[str, str]:
    return {rule["alert"]: rule["expr"] for group in RULES["groups"] for rule in group["rules"]}


def dashboard_expressions() -> dict[str, str]:
    return {
        f"{panel['title']} {target['refId']}": target["expr"]
        for panel in DASHBOARD["panels"] for target in panel.get("targets", [])
    }


def promql_read(expr: str) -> tuple[set[str], set[str]]:
    """The metric names and the label names an expression uses (our own reading of PromQL:
    enough for the expressions we write, and strict: an unknown word fails)."""
    expr = expr.replace("$__rate_interval", "5m")
    labels = {name.strip() for group in re.findall(r"\b(?:by|without)\s*\(([^)]*)\)", expr)
              for name in group.split(",") if name.strip()}
    expr = re.sub(r"\b(?:by|without)\s*\([^)]*\)", " ", expr)
    for matchers in re.findall(r"\{([^}]*)\}", expr):
        labels |= {m.split("=")[0].strip(" !~") for m in matchers.split(",") if m.strip()}
    expr = re.sub(r"\{[^}]*\}|\[[^\]]*\]|\"[^\"]*\"", " ", expr)
    names = set()
    for match in re.finditer(r"([A-Za-z_:][A-Za-z0-9_:]*)\s*(\()?", expr):
        word, call = match.groups()
        if call:
            assert word in PROMQL_FUNCTIONS, f"unknown PromQL function {word!r} in {expr}"
        elif word not in PROMQL_KEYWORDS:
            names.add(word)
    return names, labels


def declared_labels() -> dict[str, set[str]]:
    """Label names of the metrics in crm_events/metrics.py, for families with no sample yet."""
    found: dict[str, set[str]] = {}
    for metric in vars(metrics).values():
        if isinstance(metric, MetricWrapperBase):
            for family in metric.describe():
                for suffix in ("", "_total", "_bucket", "_count", "_sum"):
                    found[family.name + suffix] = set(metric._labelnames)
    return found


# --- the files ----------------------------------------------------------------------------


def test_the_profile_adds_prometheus_and_grafana_with_files_that_exist(tmp_path):
    services = COMPOSE["services"]
    profiled = {name for name, service in services.items() if "monitoring" in service.get("profiles", [])}
    assert profiled == {"prometheus", "grafana"}
    assert {"prometheus-data", "grafana-data"} <= set(COMPOSE["volumes"])
    # Prometheus reaches each web process and the consumer by its compose service name.
    scrape = yaml.safe_load((MONITORING / "prometheus" / "prometheus.yml").read_text())["scrape_configs"]
    targets = {target.split(":")[0] for job in scrape for config in job["static_configs"]
               for target in config["targets"]}
    assert targets == {"web-1", "web-2", "consumer"} and targets <= set(services)
    assert services["consumer"]["environment"]["CONSUMER_METRICS_PORT"] == "9100"
    for name in profiled:
        for volume in services[name]["volumes"]:
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (ROOT / "docker" / source).exists(), f"{name} mounts {source}, which is missing"
    prometheus = yaml.safe_load((MONITORING / "prometheus" / "prometheus.yml").read_text())
    assert all((MONITORING / "prometheus" / path).exists() for path in prometheus["rule_files"])
    datasource = yaml.safe_load(
        (MONITORING / "grafana" / "provisioning" / "datasources" / "prometheus.yaml").read_text()
    )["datasources"][0]
    targets = [target for panel in DASHBOARD["panels"] for target in panel.get("targets", [])]
    uids = {target["datasource"]["uid"] for target in targets}
    assert uids == {datasource["uid"]}
    assert all(panel.get("targets") for panel in DASHBOARD["panels"] if panel["type"] != "row")
    assert len({panel["id"] for panel in DASHBOARD["panels"]}) == len(DASHBOARD["panels"])
    # As compose resolves it, with the profile on: the files it mounts and the services it waits for.
    resolved = compose_resolve(tmp_path, profiles=("monitoring",))["services"]
    assert {"prometheus", "grafana"} <= set(resolved)


def test_our_promql_reading_is_strict():
    assert promql_read('sum by (reason) (rate(aetherlink_x_total{reason="slow"}[$__rate_interval])) > 0') == (
        {"aetherlink_x_total"}, {"reason"})
    with pytest.raises(AssertionError, match="unknown PromQL function 'rat'"):
        promql_read("sum(rat(aetherlink_x_total[5m]))")


def test_rules_and_dashboard_queries_parse():
    for rule in (r for group in RULES["groups"] for r in group["rules"]):
        assert {"alert", "expr", "labels", "annotations"} <= set(rule), rule
        assert rule["labels"]["severity"] in {"info", "warning", "critical"}
    for expr in [*rule_expressions().values(), *dashboard_expressions().values()]:
        promql_read(expr)
    promtool = promtool_find()
    if promtool is None:
        print("PROMTOOL not on this machine (make promtool builds it): PromQL read by the test only")
        return
    check = [promtool, "check", "rules", str(MONITORING / "prometheus" / "alerts.yml")]
    done = subprocess.run(check, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    # The alerts fire on synthetic series as alerts.test.yml expects, with their labels and text.
    unit = [promtool, "test", "rules", str(MONITORING / "prometheus" / "alerts.test.yml")]
    done = subprocess.run(unit, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    prometheus_yml = str(MONITORING / "prometheus" / "prometheus.yml")
    config = [promtool, "check", "config", prometheus_yml]  # and the rule files it names
    done = subprocess.run(config, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_dashboard_queries_are_valid_promql_for_promtool(tmp_path: Path):
    promtool = promtool_find()
    if promtool is None:
        pytest.skip("promtool is not on this machine (make promtool); test_rules_and_dashboard_queries_parse "
                    "read the same expressions")
    # Grafana's $__rate_interval becomes a duration; each query becomes a recording rule.
    rules = [{"record": f"dashboard:query_{i}", "expr": expr.replace("$__rate_interval", "5m")}
             for i, expr in enumerate(dashboard_expressions().values())]
    path = tmp_path / "dashboard-rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    done = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


# --- against the real processes -----------------------------------------------------------


def bearer(subject: str) -> dict[str, str]:
    claims = {"sub": subject, "exp": int(time.time()) + 600}
    return {"Authorization": f"Bearer {jwt.encode(claims, JWT_KEY, algorithm='HS256')}"}


async def test_every_metric_and_label_used_is_exported_by_a_real_process(stack, kafka, topic):
    consumer_port = free_port()
    dead_letters = f"{topic}.dead-letters"
    await topic_create(kafka.bootstrap, dead_letters)
    stack.env.update(
        CONSUMER_METRICS_PORT=str(consumer_port), CANARY_INTERVAL="0.5", CANARY_MAX_AGE="5",
        KAFKA_DEAD_LETTER_TOPIC=dead_letters, SSE_AUTH_MODE="jwt", SSE_JWT_KEY=JWT_KEY,
        SSE_MAX_STREAMS_PER_SUBJECT="1",
    )
    stack.consumer()
    _, port = stack.daphne()
    stack.wait_ready(port)

    # Traffic: a stream that gets events, one refused by a limit, one refused by auth, and a
    # record consume_events must deliver marked undecodable (and dead-letter).
    stream = await SseConnection.open("127.0.0.1", port, "/crm-events", bearer("ops"))
    assert (await asyncio.to_thread(http_get, port, "/crm-events"))[0] == 401
    second = await SseConnection.open("127.0.0.1", port, "/crm-events", bearer("ops"))
    assert second.status == 429
    second.close()
    await produce(kafka.bootstrap, topic, json_values(6), partitions=[0, 1, 2, 0, 1, 2])
    undecodable = [[ForeignRecord(b"{}", headers=[(RawHeaderName(b"\xff-name"), b"v")])]]
    await asyncio.to_thread(foreign_produce, kafka.bootstrap, topic, undecodable)
    await stream.events_until(lambda events: sum('"domain_event"' in e.data for e in events) >= 7, timeout=30)
    stream.close()
    await asyncio.to_thread(
        wait_until, lambda: metric_value(metrics_text(port), "aetherlink_sse_streams_closed_total") >= 1,
        timeout=20, what="the stream's close counted",
    )
    await asyncio.to_thread(
        wait_until,
        lambda: metric_value(metrics_text(consumer_port), "aetherlink_records_dead_lettered_total"),
        timeout=30, what="the dead letter counted",
    )
    # Lag is measured with each heartbeat: the first may come before any partition was read.
    await asyncio.to_thread(
        wait_until, lambda: "aetherlink_consumer_lag{" in metrics_text(port),
        timeout=30, what="a heartbeat with the lag of the partitions read",
    )
    exported: dict[str, set[str]] = {}
    for text in (metrics_text(port), metrics_text(consumer_port)):
        for name, labels in metric_names(text).items():
            exported.setdefault(name, set()).update(labels)

    declared = declared_labels()
    used = {f"rule {name}": expr for name, expr in rule_expressions().items()}
    used |= {f"panel {name}": expr for name, expr in dashboard_expressions().items()}
    for where, expr in used.items():
        names, labels = promql_read(expr)
        missing = names - set(exported) - PROMETHEUS_SERIES
        assert not missing, f"{where}: {sorted(missing)} not exported by the web process or consume_events"
        # Label names: from the real samples where traffic made some, else as declared in metrics.py.
        known = PROMETHEUS_LABELS | {"le"} | {
            label for name in names for label in (exported.get(name) or declared.get(name, set()))
        }
        assert labels <= known, f"{where}: labels {sorted(labels - known)} not on {sorted(names)}"
    # The traffic did make the labelled series the alerts are about.
    web = metrics_text(port)
    assert metric_value(web, "aetherlink_sse_streams_rejected_total", limit="subject") == 1
    assert metric_value(web, "aetherlink_sse_auth_failures_total", reason="missing") == 1
    assert {"consumer", "topic", "partition"} <= exported["aetherlink_consumer_lag"]
    assert metric_value(metrics_text(consumer_port), "aetherlink_records_undecodable_total", topic=topic) == 1
