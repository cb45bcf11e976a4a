"""The Helm chart (deploy/helm/crm-events) rendered by the cached helm, as Python objects."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import yaml

from tests.support.tools import helm_ensure

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "crm-events"
# The values files shipped beside the chart (ci/<name>-values.yaml), the tests' three installs.
EXAMPLES = {name: CHART / "ci" / f"{name}-values.yaml" for name in ("minimal", "production", "everything")}
OLDEST_KUBERNETES = "1.30.0"  # Chart.yaml's kubeVersion: preStop's sleep action is on by default from 1.30
NEWEST_KUBERNETES = "1.37.0"  # the newest whose schemas kubernetes-validate ships
RELEASE = "aetherlink"
NAMESPACE = "aetherlink"


def helm(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([helm_ensure(), *args], capture_output=True, text=True, timeout=120, check=False)


def chart_template(*values: Path, sets: tuple[str, ...] = (),
                   kube_version: str = NEWEST_KUBERNETES) -> subprocess.CompletedProcess[str]:
    """`helm template` of the chart as release RELEASE in NAMESPACE, hooks included."""
    args = ["template", RELEASE, str(CHART), "--namespace", NAMESPACE, "--kube-version", kube_version]
    for path in values:
        args += ["--values", str(path)]
    for assignment in sets:
        args += ["--set", assignment]
    return helm(*args)


def chart_render(*values: Path, sets: tuple[str, ...] = (),
                 kube_version: str = NEWEST_KUBERNETES) -> list[dict[str, Any]]:
    """The rendered objects; helm's error when it refuses the values."""
    done = chart_template(*values, sets=sets, kube_version=kube_version)
    if done.returncode != 0:
        raise RuntimeError(done.stderr)
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def chart_environment(docs: list[dict[str, Any]], container: dict[str, Any]) -> dict[str, str]:
    """What a rendered container's environment holds: the ConfigMaps and chart-made Secrets of its
    envFrom, then its env (a Secret the chart does not make, existingSecret, adds nothing here)."""
    found: dict[str, str] = {}
    for source in container.get("envFrom", []):
        for kind, ref in (("ConfigMap", "configMapRef"), ("Secret", "secretRef")):
            if ref in source:
                made = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == source[ref]["name"]]
                for doc in made:
                    found.update(doc.get("data") or doc.get("stringData") or {})
    found.update({e["name"]: e.get("value", "<from a reference>") for e in container.get("env", [])})
    return found
