"""Client payloads as `consume_events` publishes them, for unit tests of the web side."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from crm_events.config import KafkaConfig, kafka_config


def domain_payload(
    *, topic: str = "t", partition: int = 0, offset: int = 0, type_: str | None = "deal.won",
    key: str | dict[str, str] | None = None, headers: dict[str, Any] | None = None, value: Any = None,
    value_format: str = "json", timestamp: int = 0,
) -> dict[str, Any]:
    return {
        "kind": "domain_event", "topic": topic, "partition": partition, "offset": offset,
        "timestamp": timestamp, "key": key, "headers": headers or {}, "type": type_,
        "value": {"type": type_} if value is None and type_ is not None else value,
        "value_format": value_format,
    }


def payload_json(payload: dict[str, Any]) -> str:
    """The payload as a frame's `data:` carries it (compact, UTF-8, keys in insertion order)."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False)


def serving(*topics: str) -> KafkaConfig:
    """The test settings' Kafka config, serving `topics`."""
    return replace(kafka_config(), topics=topics)
