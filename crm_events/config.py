"""Typed configuration records, built once from `django.conf.settings`.

The consumer, the web process and the commands take one of these records rather
than reading settings themselves, so every knob has one name and one type.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cache
from ipaddress import IPv4Network, IPv6Network, ip_network

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

# The exit status of any entry point (`manage.py`, `aetherlink`, `aetherlink-web`) whose settings
# are missing or invalid: argparse's for a usage error, which a bad setting is, told apart from
# a command that ran and failed (1).
CONFIG_ERROR_EXIT = 2

# `user:secret@host` inside a broker address (SASL URLs, proxies) never leaves the process.
# The userinfo ends at the LAST `@` before the first `/`: a password may hold an `@` itself.
_CREDENTIALS = re.compile(r"^(?P<scheme>[a-zA-Z][\w+.-]*://)?(?P<userinfo>[^/]*)@")


@dataclass(frozen=True, slots=True)
class KafkaSecurity:
    """How every Kafka client authenticates and encrypts (`KAFKA_SECURITY_PROTOCOL` and friends)."""

    protocol: str = "PLAINTEXT"
    sasl_mechanism: str = "PLAIN"
    sasl_username: str = ""
    sasl_password: str = field(default="", repr=False)
    ssl_cafile: str = ""
    ssl_certfile: str = ""
    ssl_keyfile: str = ""

    @property
    def uses_sasl(self) -> bool:
        return self.protocol.startswith("SASL_")

    @property
    def uses_ssl(self) -> bool:
        return self.protocol.endswith("SSL")

    def describe(self) -> str:
        """For log lines and `/`: everything but the password."""
        if not self.uses_sasl:
            return self.protocol
        return f"{self.protocol} {self.sasl_mechanism} user={self.sasl_username}"


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
    security: KafkaSecurity = KafkaSecurity()
    dead_letter_topic: str = ""
    positions_topic: str = "crm-events-sse.positions"
    # Seconds between metadata refreshes: how soon partitions added to a topic are noticed.
    metadata_max_age: float = 30.0

    @property
    def bootstrap_servers(self) -> str:
        return ",".join(self.brokers)

    @property
    def metadata_max_age_ms(self) -> int:
        return max(1, round(self.metadata_max_age * 1000))

    @property
    def brokers_redacted(self) -> list[str]:
        return [broker_redact(broker) for broker in self.brokers]


@dataclass(frozen=True, slots=True)
class StreamConfig:
    heartbeat_interval: float
    retry_ms: int
    client_buffer: int
    write_buffer_bytes: int
    socket_send_buffer: int
    stall_timeout: float
    max_lifetime: float
    shutdown_grace: float


@dataclass(frozen=True, slots=True)
class RequestHeadLimits:
    """How large a request's head may be before the server answers 414 or 431 (`WEB_MAX_*`), in
    bytes of the lines without their CRLF: the request line, one header line (name, colon and
    value), all header lines together (not the request line), and how many headers."""

    request_line: int = 32 * 1024
    header: int = 32 * 1024
    headers_total: int = 64 * 1024
    headers: int = 200


@dataclass(frozen=True, slots=True)
class ServerConfig:
    listen_backlog: int
    request_head: RequestHeadLimits = RequestHeadLimits()


@dataclass(frozen=True, slots=True)
class ReadinessConfig:
    consumer_heartbeat_interval: float
    heartbeat_max_age: float
    consumer_status_interval: float = 30.0  # consume_events' status line; 0: none
    publish_stall_seconds: float = 45.0  # no progress this long: publishing is stalled


@dataclass(frozen=True, slots=True)
class ViewerConfig:
    public: bool
    buffer_rows: int


Network = IPv4Network | IPv6Network


@dataclass(frozen=True, slots=True)
class AuthConfig:
    """Who may open a stream (`SSE_AUTH_MODE` and the `SSE_JWT_*` settings)."""

    mode: str
    jwt_algorithm: str = "HS256"
    jwt_key: str = field(default="", repr=False)
    jwt_audience: str = ""
    jwt_issuer: str = ""
    jwt_leeway: float = 30.0
    jwt_cookie: str = ""
    topics_claim: str = "topics"
    kinds_claim: str = "kinds"


@dataclass(frozen=True, slots=True)
class LimitsConfig:
    max_streams: int
    max_per_client: int
    max_per_subject: int
    retry_after: int
    trusted_proxies: tuple[Network, ...] = ()


@dataclass(frozen=True, slots=True)
class MetricsConfig:
    token: str = field(default="", repr=False)
    allowed_networks: tuple[Network, ...] = ()
    consumer_port: int = 0
    consumer_address: str = "127.0.0.1"  # where consume_events serves its metrics: loopback by default
    consumer_liveness_max_age: float = 120.0  # the consume loop idle longer: its /livez is 503


@dataclass(frozen=True, slots=True)
class CanaryConfig:
    interval: float
    max_age: float

    @property
    def enabled(self) -> bool:
        return self.interval > 0


def networks_parse(values: list[str]) -> tuple[Network, ...]:
    return tuple(ip_network(value, strict=False) for value in values)


def broker_redact(broker: str) -> str:
    """Replace any credentials in a broker address with `***`."""
    return _CREDENTIALS.sub(lambda m: f"{m.group('scheme') or ''}***@", broker, count=1)


def settings_load() -> None:
    """Import the settings now (aetherlink/settings.py checks every value as it reads it), so a
    bad one raises ImproperlyConfigured here, before anything starts."""
    settings.INSTALLED_APPS  # noqa: B018 - the first access imports and validates the module


def config_error_line(error: ImproperlyConfigured) -> str:
    """The error as one line for stderr: what is wrong and what to set."""
    return "configuration error: " + " ".join(str(error).split())


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
        dead_letter_topic=settings.KAFKA_DEAD_LETTER_TOPIC,
        positions_topic=settings.KAFKA_POSITIONS_TOPIC,
        metadata_max_age=settings.KAFKA_METADATA_MAX_AGE,
        security=KafkaSecurity(
            protocol=settings.KAFKA_SECURITY_PROTOCOL,
            sasl_mechanism=settings.KAFKA_SASL_MECHANISM,
            sasl_username=settings.KAFKA_SASL_USERNAME,
            sasl_password=settings.KAFKA_SASL_PASSWORD,
            ssl_cafile=settings.KAFKA_SSL_CAFILE,
            ssl_certfile=settings.KAFKA_SSL_CERTFILE,
            ssl_keyfile=settings.KAFKA_SSL_KEYFILE,
        ),
    )


@cache
def stream_config() -> StreamConfig:
    return StreamConfig(
        heartbeat_interval=settings.SSE_HEARTBEAT_INTERVAL,
        retry_ms=settings.SSE_RETRY_MS,
        client_buffer=settings.SSE_CLIENT_BUFFER,
        write_buffer_bytes=settings.SSE_WRITE_BUFFER_BYTES,
        socket_send_buffer=settings.SSE_SOCKET_SEND_BUFFER,
        stall_timeout=settings.SSE_STALL_TIMEOUT,
        max_lifetime=settings.SSE_MAX_LIFETIME,
        shutdown_grace=settings.SSE_SHUTDOWN_GRACE,
    )


@cache
def server_config() -> ServerConfig:
    return ServerConfig(
        listen_backlog=settings.WEB_LISTEN_BACKLOG,
        request_head=RequestHeadLimits(
            request_line=settings.WEB_MAX_REQUEST_LINE_BYTES,
            header=settings.WEB_MAX_HEADER_BYTES,
            headers_total=settings.WEB_MAX_HEADERS_BYTES,
            headers=settings.WEB_MAX_HEADERS,
        ),
    )


@cache
def readiness_config() -> ReadinessConfig:
    return ReadinessConfig(
        consumer_heartbeat_interval=settings.CONSUMER_HEARTBEAT_INTERVAL,
        heartbeat_max_age=settings.READY_HEARTBEAT_MAX_AGE,
        consumer_status_interval=settings.CONSUMER_STATUS_INTERVAL,
        publish_stall_seconds=settings.CONSUMER_PUBLISH_STALL_SECONDS,
    )


@cache
def auth_config() -> AuthConfig:
    return AuthConfig(
        mode=settings.SSE_AUTH_MODE,
        jwt_algorithm=settings.SSE_JWT_ALGORITHM,
        jwt_key=settings.SSE_JWT_KEY,
        jwt_audience=settings.SSE_JWT_AUDIENCE,
        jwt_issuer=settings.SSE_JWT_ISSUER,
        jwt_leeway=settings.SSE_JWT_LEEWAY,
        jwt_cookie=settings.SSE_JWT_COOKIE,
        topics_claim=settings.SSE_JWT_TOPICS_CLAIM,
        kinds_claim=settings.SSE_JWT_KINDS_CLAIM,
    )


@cache
def limits_config() -> LimitsConfig:
    return LimitsConfig(
        max_streams=settings.SSE_MAX_STREAMS,
        max_per_client=settings.SSE_MAX_STREAMS_PER_CLIENT,
        max_per_subject=settings.SSE_MAX_STREAMS_PER_SUBJECT,
        retry_after=settings.SSE_LIMIT_RETRY_AFTER,
        trusted_proxies=networks_parse(settings.TRUSTED_PROXIES),
    )


@cache
def metrics_config() -> MetricsConfig:
    return MetricsConfig(
        token=settings.METRICS_TOKEN,
        allowed_networks=networks_parse(settings.METRICS_ALLOWED_NETWORKS),
        consumer_port=settings.CONSUMER_METRICS_PORT,
        consumer_address=settings.CONSUMER_METRICS_ADDRESS,
        consumer_liveness_max_age=settings.CONSUMER_LIVENESS_MAX_AGE,
    )


@cache
def canary_config() -> CanaryConfig:
    return CanaryConfig(interval=settings.CANARY_INTERVAL, max_age=settings.CANARY_MAX_AGE)


@cache
def viewer_config() -> ViewerConfig:
    # Public only while DEBUG is on, even if the settings changed after start-up.
    return ViewerConfig(
        public=settings.VIEWER_PUBLIC and settings.DEBUG,
        buffer_rows=settings.VIEWER_BUFFER_ROWS,
    )


def config_cache_clear(**_signal_kwargs: object) -> None:
    for build in (
        kafka_config, stream_config, readiness_config, auth_config, limits_config, metrics_config,
        canary_config, viewer_config, server_config,
    ):
        build.cache_clear()
