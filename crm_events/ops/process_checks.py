"""What `/readyz` checks: only what is wrong with THIS web process.

A Service or a balancer takes a process out when its readiness fails; what is upstream
(the consumer, Kafka, Redis, the canary) is shared by every web process, so failing on it
takes them all out at once, and the clients that reconnect then get 503 from the Ingress,
which browsers do not retry. A process whose upstream is down still serves: its streams
keep their heartbeats and get everything when the upstream returns (the hub repairs from
Kafka). So upstream state goes to `/status`, the metrics and the alerts, and readiness fails
only while this process:
- has not joined the channel layer yet since it started (or its receive loop is restarting
  after an error of its own); a layer lost later, Redis being down, is upstream state;
- is shutting down (SIGTERM: its streams are being sent away with their resume ids);
- holds as many streams as it may (SSE_MAX_STREAMS): a new one would be refused here.
"""

from __future__ import annotations

from crm_events.fanout.hub import EventHub
from crm_events.ops.readiness import CHECK_OK, HUB_JOINING

HUB_RESTARTING = "hub {}"
SHUTTING_DOWN = "shutting down: closing streams with their resume ids"
AT_CAPACITY = "at capacity: {streams} streams of SSE_MAX_STREAMS={limit}"


def hub_ready_check(hub: EventHub) -> str:
    """Joined the layer once (a later loss of Redis is upstream's), and not restarting its loop."""
    if hub.receive_failure is not None:
        return HUB_RESTARTING.format(hub.receive_failure)
    return CHECK_OK if hub.subscription.joined_once else HUB_JOINING


def shutdown_check(shutting_down: bool) -> str:
    return SHUTTING_DOWN if shutting_down else CHECK_OK


def capacity_check(streams: int, max_streams: int) -> str:
    return AT_CAPACITY.format(streams=streams, limit=max_streams) if streams >= max_streams else CHECK_OK


def process_checks(hub: EventHub, *, shutting_down: bool, streams: int, max_streams: int) -> dict[str, str]:
    return {
        "hub": hub_ready_check(hub),
        "shutdown": shutdown_check(shutting_down),
        "capacity": capacity_check(streams, max_streams),
    }
