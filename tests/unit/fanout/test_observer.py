"""The hub observer (latency, canary arrivals), the canary check."""

from __future__ import annotations

import time

from channels.layers import InMemoryChannelLayer
from prometheus_client import REGISTRY

from crm_events import metrics
from crm_events.config import CanaryConfig
from crm_events.core import canary
from crm_events.core import messages as broadcast
from crm_events.fanout.hub import EventHub
from crm_events.ops.readiness import CHECK_OK, canary_check
from tests.support.payloads import serving


def payload(offset: int, *, topic="t", canary_marked=False, timestamp=None) -> dict:
    headers = {canary.CANARY_HEADER: "1"} if canary_marked else {}
    return {
        "kind": "domain_event", "topic": topic, "partition": 0, "offset": offset,
        "timestamp": int(time.time() * 1000) if timestamp is None else timestamp,
        "key": None, "headers": headers, "type": canary.CANARY_TYPE if canary_marked else "deal.won",
        "value": {}, "value_format": "json",
    }


def sample(name: str, **labels) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_is_canary_needs_both_the_header_and_the_type():
    assert canary.is_canary(payload(0, canary_marked=True))
    assert not canary.is_canary(payload(0))
    assert not canary.is_canary({**payload(0), "type": canary.CANARY_TYPE})
    assert not canary.is_canary({**payload(0, canary_marked=True), "type": "deal.won"})
    assert not canary.is_canary({"kind": "connected"})


def hub_new() -> EventHub:
    return EventHub(InMemoryChannelLayer(), serving("t", "obs-topic"))


async def test_observer_sees_every_event_once_and_notes_canaries():
    hub = hub_new()
    observer = hub.observer
    assert hub.stream_count == 0 and hub.drained.is_set()  # not a stream: shutdown never waits for it
    received_before = sample("aetherlink_events_received_total", topic="obs-topic")
    latency_before = sample("aetherlink_delivery_latency_seconds_count")
    two_seconds_ago = int(time.time() * 1000) - 2000
    items = [broadcast.record_item(payload(i, topic="obs-topic", timestamp=two_seconds_ago), prev=i, size=1)
             for i in range(3)]
    await hub.message_handle(broadcast.records_message(items))
    await hub.message_handle(broadcast.records_message(items[:1]))  # a replay: the hub drops it
    assert observer.canary_age() is None
    assert sample("aetherlink_events_received_total", topic="obs-topic") == received_before + 3
    assert sample("aetherlink_delivery_latency_seconds_count") == latency_before + 3
    assert sample("aetherlink_delivery_latency_seconds_bucket", le="1.0") < latency_before + 3

    await hub.message_handle(broadcast.records_message([
        broadcast.record_item(payload(3, topic="obs-topic", canary_marked=True), prev=3, size=1)
    ]))
    assert 0 <= observer.canary_age() < 1
    observer.metrics_refresh()
    assert 0 <= sample("aetherlink_canary_age_seconds") < 1
    assert 0 <= sample("aetherlink_canary_delay_seconds") < 5


def test_canary_readiness_verdicts():
    observer = hub_new().observer
    config = CanaryConfig(interval=1, max_age=5)
    assert canary_check(observer, config) == canary.NO_CANARY_YET
    observer.last_canary_at = time.monotonic() - 1
    assert canary_check(observer, config) == CHECK_OK
    observer.last_canary_at = time.monotonic() - 9
    assert canary_check(observer, config).startswith("last canary event arrived 9.")
    assert canary_check(observer, config).endswith("ago (CANARY_MAX_AGE is 5s)")


def test_consumer_lag_export_replaces_the_previous_values():
    metrics.consumer_lag_set({"c1": {"a.b:0": 4, "a.b:1": 0}})
    assert sample("aetherlink_consumer_lag", consumer="c1", topic="a.b", partition="0") == 4
    metrics.consumer_lag_set({"c2": {"a.b:0": 1}})
    assert REGISTRY.get_sample_value(
        "aetherlink_consumer_lag", {"consumer": "c1", "topic": "a.b", "partition": "0"}
    ) is None
    assert sample("aetherlink_consumer_lag", consumer="c2", topic="a.b", partition="0") == 1
