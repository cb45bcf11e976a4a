"""Strict validation of custom resources against the schemas their projects publish.

A CRD's openAPIV3Schema lets unknown fields through (the API server prunes them silently), so,
as `kubectl apply --validate=strict` would, every object schema that lists its properties and
does not preserve unknown fields gets `additionalProperties: false` here: a misspelt field fails.
"""

from __future__ import annotations

import functools
from typing import Any

import jsonschema
import yaml

from tests.support.tools import crd_dir

UNKNOWN_KIND = "no CRD of {group} defines {kind} {version}"


class _CrdLoader(yaml.SafeLoader):
    """PyYAML's safe loader, reading a plain `=` (an enum value in the Prometheus Operator's CRDs)
    as the string it is rather than YAML 1.1's `value` type, which PyYAML cannot construct."""


def _plain_string(loader: _CrdLoader, node: yaml.ScalarNode) -> str:
    return str(loader.construct_scalar(node))


_CrdLoader.add_constructor("tag:yaml.org,2002:value", _plain_string)


def crd_validate(doc: dict[str, Any]) -> None:
    """Raise jsonschema.ValidationError when `doc` does not fit its CRD's schema, strictly."""
    group, version = doc["apiVersion"].split("/")
    jsonschema.validate(doc, crd_schema(group, version, doc["kind"]))


@functools.cache
def crd_schema(group: str, version: str, kind: str) -> dict[str, Any]:
    for path in sorted(crd_dir(group).glob("*.yaml")):
        crd = yaml.load(path.read_text(), Loader=_CrdLoader)  # noqa: S506 (a safe loader)
        if crd["spec"]["names"]["kind"] != kind:
            continue
        for served in crd["spec"]["versions"]:
            if served["name"] == version:
                return _strict(served["schema"]["openAPIV3Schema"])
    raise LookupError(UNKNOWN_KIND.format(group=group, kind=kind, version=version))


def _strict(schema: Any) -> Any:
    if isinstance(schema, list):
        return [_strict(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    strict = {key: _strict(value) for key, value in schema.items()}
    if "properties" in schema and not schema.get("x-kubernetes-preserve-unknown-fields"):
        strict.setdefault("additionalProperties", False)
    if isinstance(schema.get("pattern"), str):
        strict["pattern"] = _python_pattern(schema["pattern"])
    if schema.get("nullable") and "type" in schema:  # OpenAPI's nullable, in JSON Schema's terms
        strict["type"] = [schema["type"], "null"]
    return strict


def _python_pattern(pattern: str) -> str:
    """Go's RE2 takes `^(?i)...`; Python wants global flags first (the same meaning here)."""
    if pattern.startswith("^(?i)"):
        return "(?i)^" + pattern.removeprefix("^(?i)")
    return pattern
