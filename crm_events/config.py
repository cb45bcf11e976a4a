"""Typed configuration records, built once from `django.conf.settings`.

The consumer, the web process and the commands take one of these records rather
than reading settings themselves, so every knob has one name and one type.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache

from django.conf import settings

# `user:secret@host` inside a broker address (SASL URLs, proxies) never leaves the process.
_CREDENTIALS = re.compile(r"(?P<scheme>^[a-zA-Z][\w+.-]*://)?(?P<userinfo>[^@/]+)@")


@dataclass(frozen=True, slots=True)
class KafkaConfig:
    brokers: tuple[str, ...]
    topics: tuple[str, ...]
    group: str
    offset_reset: str
    topic_partitions: int
    topic_replication: int
    retry_backoff_max: float
    batch_max_records: int

    @property
    def bootstrap_servers(self) -> str:
        return ",".join(self.brokers)

    @property
    def brokers_redacted(self) -> list[str]:
        return [broker_redact(broker) for broker in self.brokers]


@dataclass(frozen=True, slots=True)
class StreamConfig:
    heartbeat_interval: float
    retry_ms: int
    client_buffer: int
    write_buffer_bytes: int
    stall_timeout: float
    max_lifetime: float
    shutdown_grace: float


@dataclass(frozen=True, slots=True)
class ReadinessConfig:
    consumer_heartbeat_interval: float
    heartbeat_max_age: float


@dataclass(frozen=True, slots=True)
class ViewerConfig:
    public: bool
    buffer_rows: int


def broker_redact(broker: str) -> str:
    """Replace any credentials in a broker address with `***`."""
    return _CREDENTIALS.sub(lambda m: f"{m.group('scheme') or ''}***@", broker, count=1)


@cache
def kafka_config() -> KafkaConfig:
    return KafkaConfig(
        brokers=tuple(settings.KAFKA_BROKERS),
        topics=tuple(dict.fromkeys(settings.KAFKA_TOPICS)),
        group=settings.KAFKA_GROUP,
        offset_reset=settings.KAFKA_OFFSET_RESET,
        topic_partitions=settings.KAFKA_TOPIC_PARTITIONS,
        topic_replication=settings.KAFKA_TOPIC_REPLICATION,
        retry_backoff_max=settings.KAFKA_RETRY_BACKOFF_MAX,
        batch_max_records=settings.CONSUMER_BATCH_MAX_RECORDS,
    )


@cache
def stream_config() -> StreamConfig:
    return StreamConfig(
        heartbeat_interval=settings.SSE_HEARTBEAT_INTERVAL,
        retry_ms=settings.SSE_RETRY_MS,
        client_buffer=settings.SSE_CLIENT_BUFFER,
        write_buffer_bytes=settings.SSE_WRITE_BUFFER_BYTES,
        stall_timeout=settings.SSE_STALL_TIMEOUT,
        max_lifetime=settings.SSE_MAX_LIFETIME,
        shutdown_grace=settings.SSE_SHUTDOWN_GRACE,
    )


@cache
def readiness_config() -> ReadinessConfig:
    return ReadinessConfig(
        consumer_heartbeat_interval=settings.CONSUMER_HEARTBEAT_INTERVAL,
        heartbeat_max_age=settings.READY_HEARTBEAT_MAX_AGE,
    )


@cache
def viewer_config() -> ViewerConfig:
    # Public only while DEBUG is on, even if the settings changed after start-up.
    return ViewerConfig(
        public=settings.VIEWER_PUBLIC and settings.DEBUG,
        buffer_rows=settings.VIEWER_BUFFER_ROWS,
    )


def config_cache_clear(**_signal_kwargs: object) -> None:
    for build in (kafka_config, stream_config, readiness_config, viewer_config):
        build.cache_clear()
