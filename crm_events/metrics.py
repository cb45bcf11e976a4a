"""Prometheus metrics, for `/metrics` of each web process and `CONSUMER_METRICS_PORT` of consume_events.

All metrics live in prometheus-client's default registry (with its process and
Python collectors). Each process exports only what happens in it: a web process
counts its streams and deliveries, consume_events counts what it consumed; the
consumer lag reaches web processes in the consumer heartbeats, so both export it.
Callers use the small functions below rather than the metric objects.

The workers of `aetherlink-web --workers N` run in prometheus-client's multiprocess mode
and `/metrics` adds them up (crm_events/ops/metrics_view.py), so each gauge says how:
streams connected are summed over the live workers, the canary delay is the worst
worker's, the canary age the freshest value (the one the answering worker refreshed as
it was scraped). The consumer lag and publishing stalls are not gauges but `HEARTBEATS`,
a collector of what this process's last scrape found in the consumer heartbeats, which
every worker receives alike: in multiprocess mode a gauge cannot forget a label set.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

from prometheus_client import REGISTRY, Counter, Gauge, Histogram
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

STREAMS_CONNECTED = Gauge(
    "aetherlink_sse_streams_connected", "SSE streams open in this web process.", multiprocess_mode="livesum")
STREAMS_CLOSED = Counter(
    "aetherlink_sse_streams_closed_total",
    "SSE streams ended, by reason (slow: disconnected for not reading fast enough).",
    ["reason"],
)
STREAMS_REJECTED = Counter(
    "aetherlink_sse_streams_rejected_total", "Streams refused by a concurrency limit.", ["limit"]
)
REQUESTS_REFUSED = Counter(
    "aetherlink_http_requests_refused_total",
    "Requests the server refused before Django, by what was over its limit: request_line (414); "
    "header, headers_total, headers (431); malformed (400, not valid HTTP/1.1).",
    ["limit"],
)
AUTH_FAILURES = Counter(
    "aetherlink_sse_auth_failures_total", "Stream requests refused with 401 or 403.", ["reason"]
)
EVENTS_CONSUMED = Counter(
    "aetherlink_events_consumed_total",
    "Kafka records consume_events published to the web processes.",
    ["topic"],
)
EVENTS_RECEIVED = Counter(
    "aetherlink_events_received_total", "Events that reached this web process's hub.", ["topic"]
)
EVENTS_DELIVERED = Counter(
    "aetherlink_sse_events_delivered_total", "Events written to SSE clients (one per client)."
)
STREAMS_REVOKED = Counter(
    "aetherlink_sse_streams_revoked_total",
    "SSE streams ended because their credentials changed (grants_changed, logged_out).",
    ["reason"],
)
STREAMS_GRANTED = Counter(
    "aetherlink_sse_streams_granted_total",
    "SSE streams started, by what limits them: superuser, user or group (a session user's grant in "
    "force), token_grant (a token's grant), claims (only a token's topics and kinds), none (no auth).",
    ["rule"],
)
STREAM_AUDIT_EVENTS = Counter(
    "aetherlink_sse_stream_audit_events_total",
    "Events delivered to streams that ended, by what limited them (as aetherlink_sse_streams_granted_total).",
    ["rule"],
)
RESUMES = Counter("aetherlink_sse_resumes_total", "Streams that resumed from a resume id.")
GAPS = Counter("aetherlink_sse_gaps_total", "Gaps reported to clients (events that could not be replayed).")
CONSUMER_LAG_HELP = "Records not yet consumed, per partition, as the consumer's last heartbeat measured."
DELIVERY_LATENCY = Histogram(
    "aetherlink_delivery_latency_seconds",
    "Kafka record timestamp to the event reaching this web process's hub.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0),
)
WRITE_ROUND = Histogram(
    "aetherlink_hub_write_round_seconds",
    "One round of the hub's writes to every client given frames by the last batches: the time "
    "from an event reaching the hub to its last client's socket write, at most.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
CANARY_DELAY = Gauge(
    "aetherlink_canary_delay_seconds", "Produce-to-hub time of the last canary event this process got.",
    multiprocess_mode="livemax",
)
CANARY_AGE = Gauge(
    "aetherlink_canary_age_seconds",
    "Seconds since the last canary event reached this process (NaN: none yet, or canary off).",
    multiprocess_mode="mostrecent",
)
CANARY_AGE.set(float("nan"))
# Readiness no longer fails on the consumer (crm_events/ops/process_checks.py): this and the
# alert on it are how a consumer, Kafka or Redis outage is seen from the web side.
CONSUMER_HEARTBEAT_AGE = Gauge(
    "aetherlink_consumer_heartbeat_age_seconds",
    "Seconds since a consume_events heartbeat reached this web process (+Inf: none since it started).",
    multiprocess_mode="mostrecent",  # under --workers: the worker answering the scrape just set it
)
CONSUMER_HEARTBEAT_AGE.set(float("inf"))


def consumer_heartbeat_age_set(age: float | None) -> None:
    CONSUMER_HEARTBEAT_AGE.set(float("inf") if age is None else age)


def stream_closed(reason: str) -> None:
    """Called once per stream when it ends: `slow`, `shutdown`, `expired`, `client`...

    The connected gauge follows the stream slots of `crm_events.access.limits`, not this call.
    """
    STREAMS_CLOSED.labels(reason=reason).inc()


def stream_rejected(limit: str) -> None:
    STREAMS_REJECTED.labels(limit=limit).inc()


def auth_failed(reason: str) -> None:
    AUTH_FAILURES.labels(reason=reason).inc()


def events_consumed(topic: str, count: int) -> None:
    EVENTS_CONSUMED.labels(topic=topic).inc(count)


class StreamWriteTally:
    """Chunks written, by path, as plain integers: the per-socket path adds one here (an
    attribute increment), and `stream_writes_flush` moves them into `STREAM_WRITES` in one step
    per write round (with each count of deliveries, each heartbeat and each scrape), instead of
    a locked Counter increment (in multiprocess mode, a write into a shared file) per write."""

    __slots__ = ("body", "socket", "twisted")

    def __init__(self) -> None:
        self.socket = 0
        self.twisted = 0
        self.body = 0


STREAM_WRITE_TALLY = StreamWriteTally()


def stream_writes_flush() -> None:
    tally = STREAM_WRITE_TALLY
    if tally.socket:
        STREAM_WRITES.labels(path="socket").inc(tally.socket)
        tally.socket = 0
    if tally.twisted:
        STREAM_WRITES.labels(path="twisted").inc(tally.twisted)
        tally.twisted = 0
    if tally.body:
        STREAM_WRITES.labels(path="body").inc(tally.body)
        tally.body = 0


def events_delivered(count: int) -> None:
    """Events just written to clients (one per client): a round of writes, or one stream's."""
    EVENTS_DELIVERED.inc(count)
    stream_writes_flush()


def streams_revoked(reason: str, count: int) -> None:
    STREAMS_REVOKED.labels(reason=reason).inc(count)


def stream_granted(rule: str) -> None:
    STREAMS_GRANTED.labels(rule=rule).inc()


def stream_audit_ended(rule: str, events: int) -> None:
    STREAM_AUDIT_EVENTS.labels(rule=rule).inc(events)


def resume_served() -> None:
    RESUMES.inc()


def gap_reported(count: int = 1) -> None:
    GAPS.inc(count)


def event_received(topic: str, timestamp_ms: object, *, now: float | None = None) -> None:
    """One event reached this process; observe its latency from the Kafka record timestamp."""
    EVENTS_RECEIVED.labels(topic=topic).inc()
    if isinstance(timestamp_ms, int) and timestamp_ms > 0:
        now = time.time() if now is None else now
        DELIVERY_LATENCY.observe(max(0.0, now - timestamp_ms / 1000))


class HeartbeatCollector(Collector):
    """The consumer lag and publishing stalls, as last set: each set replaces the one before."""

    def __init__(self) -> None:
        self.lags: dict[str, dict[str, int]] = {}
        self.stalls: dict[str, float] = {}

    def collect(self) -> Iterator[Metric]:
        lag = GaugeMetricFamily(
            "aetherlink_consumer_lag", CONSUMER_LAG_HELP, labels=["consumer", "topic", "partition"])
        for consumer, partitions in self.lags.items():
            for position, value in partitions.items():
                topic, _, partition = position.rpartition(":")
                lag.add_metric([consumer, topic, partition], value)
        stalled = GaugeMetricFamily("aetherlink_consumer_publishing_stalled_seconds", PUBLISHING_STALLED_HELP,
                                    labels=["consumer"])
        for consumer, seconds in self.stalls.items():
            stalled.add_metric([consumer], seconds)
        yield lag
        yield stalled


def consumer_lag_set(lags: dict[str, dict[str, int]]) -> None:
    """Replace the exported lag with `{consumer_id: {"topic:partition": lag}}`."""
    HEARTBEATS.lags = {consumer: dict(partitions) for consumer, partitions in lags.items()}
RECORDS_UNDECODABLE = Counter(
    "aetherlink_records_undecodable_total",
    "Records consume_events could not deliver as they are (delivered marked `undecodable`).",
    ["topic"],
)
RECORDS_BY_REFERENCE = Counter(
    "aetherlink_records_by_reference_total",
    "Records consume_events published by reference (their position only) because the channel layer "
    "refused them: each web process reads them from Kafka.",
    ["topic"],
)
HUB_RECORDS_BY_REFERENCE = Counter(
    "aetherlink_hub_records_by_reference_total",
    "Records this web process read from Kafka because they came by reference.",
    ["topic"],
)
PUBLISHING_STALLED_HELP = (
    "How long a consumer has had records to publish and the channel layer accepted none, once past "
    "CONSUMER_PUBLISH_STALL_SECONDS; 0 while publishing makes progress."
)
RECORDS_DEAD_LETTERED = Counter(
    "aetherlink_records_dead_lettered_total",
    "Undecodable records consume_events copied to KAFKA_DEAD_LETTER_TOPIC.",
    ["topic"],
)
CONSUMER_RESTARTS = Counter(
    "aetherlink_consumer_restarts_total",
    "Times consume_events reconnected to Kafka after a failure (kafka: Kafka failed; error: unexpected).",
    ["reason"],
)
HUB_RESTARTS = Counter(
    "aetherlink_hub_restarts_total",
    "Times this web process's hub restarted its receive loop after an unexpected error.",
)
HUB_FOREIGN_MESSAGES = Counter(
    "aetherlink_hub_foreign_messages_total",
    "Channel-layer messages or records the hub did not understand and skipped, by reason.",
    ["reason"],
)
HUB_ERRORS = Counter(
    "aetherlink_hub_errors_total",
    "Unexpected errors the hub caught and survived, by stage (dispatch, offer, write, observe).",
    ["stage"],
)


def record_undecodable(topic: str) -> None:
    RECORDS_UNDECODABLE.labels(topic=topic).inc()


def record_by_reference(topic: str) -> None:
    RECORDS_BY_REFERENCE.labels(topic=topic).inc()


def hub_record_by_reference(topic: str) -> None:
    HUB_RECORDS_BY_REFERENCE.labels(topic=topic).inc()


def publishing_stalled_set(stalls: dict[str, float]) -> None:
    """Replace the exported stalls with `{consumer_id: seconds}` (0: not stalled)."""
    HEARTBEATS.stalls = dict(stalls)


def foreign_message(reason: str) -> None:
    HUB_FOREIGN_MESSAGES.labels(reason=reason).inc()


def hub_error(stage: str) -> None:
    HUB_ERRORS.labels(stage=stage).inc()
DIRECT_SEND_ENABLED = Gauge(
    "aetherlink_direct_send_enabled",
    "1 when this web process writes stream chunks straight into sockets (the start-up probe of "
    "Twisted passed), 0 when every write takes Twisted's own path.",
    multiprocess_mode="livemin",
)
STREAM_WRITES = Counter(
    "aetherlink_sse_writes_total",
    "Chunks written to SSE connections, by path: socket (straight into it), twisted (queued by "
    "Twisted: TLS, HTTP/2, HTTP/1.0, or bytes still unsent), body (a plain ASGI server's body).",
    ["path"],
)


HEARTBEATS = HeartbeatCollector()
REGISTRY.register(HEARTBEATS)


SCHEMA_REGISTRY_UNREACHABLE = Gauge(
    "aetherlink_schema_registry_unreachable",
    "1 while this process cannot reach the Schema Registry for a schema it needs (retrying, or "
    "past SCHEMA_REGISTRY_RETRY_SECONDS and delivering such records marked); 0 once it answers.",
    multiprocess_mode="livemax",  # under --workers: 1 while any worker cannot reach it
)
SCHEMA_FETCHES = Counter(
    "aetherlink_schema_registry_fetches_total",
    "Schemas this process asked the Schema Registry for, by outcome (ok, unknown, unreachable, invalid).",
    ["outcome"],
)
RECORDS_REGISTRY_UNDECODED = Counter(
    "aetherlink_records_registry_undecoded_total",
    "Values or keys in the Confluent wire format delivered marked registry_undecoded, by reason "
    "(unknown: the registry does not know the id; unreachable; invalid: a schema we cannot read; "
    "mismatch: bytes that do not fit their schema).",
    ["reason"],
)


def schema_registry_unreachable_set(unreachable: bool) -> None:
    SCHEMA_REGISTRY_UNREACHABLE.set(1 if unreachable else 0)


def schema_fetched(outcome: str) -> None:
    SCHEMA_FETCHES.labels(outcome=outcome).inc()


def registry_undecoded(reason: str) -> None:
    RECORDS_REGISTRY_UNDECODED.labels(reason=reason).inc()
