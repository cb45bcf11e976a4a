"""Typed configuration records, built once from `django.conf.settings`.

The consumer, the web process and the commands take one of these records rather
than reading settings themselves, so every knob has one name and one type.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cache
from ipaddress import IPv4Network, IPv6Address, IPv6Network, ip_network
from typing import Any
from urllib.parse import quote, unquote

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
    # Decrypts an encrypted KAFKA_SSL_KEYFILE.
    ssl_key_password: str = field(default="", repr=False)
    oauth: OAuthClient | None = None
    # The AWS region of an MSK cluster (KAFKA_SASL_MECHANISM=AWS_MSK_IAM).
    aws_region: str = ""

    @property
    def uses_sasl(self) -> bool:
        return self.protocol.startswith("SASL_")

    @property
    def uses_ssl(self) -> bool:
        return self.protocol.endswith("SSL")

    def describe(self) -> str:
        """For log lines and `/`: everything but the secrets."""
        if not self.uses_sasl:
            return self.protocol
        if self.sasl_mechanism == "OAUTHBEARER" and self.oauth is not None:
            oauth = self.oauth
            return f"{self.protocol} OAUTHBEARER client={oauth.client_id} endpoint={oauth.token_endpoint}"
        if self.sasl_mechanism == "AWS_MSK_IAM":
            return f"{self.protocol} AWS_MSK_IAM region={self.aws_region}"
        return f"{self.protocol} {self.sasl_mechanism} user={self.sasl_username}"


@dataclass(frozen=True, slots=True)
class OAuthClient:
    """An OAuth 2 client of the OIDC client-credentials flow (KAFKA_OAUTH_*): tokens for OAUTHBEARER."""

    token_endpoint: str
    client_id: str
    client_secret: str = field(repr=False)
    scope: str = ""


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
    # How long Kafka may hold the group consumer's fetch for more records (CONSUMER_BATCH_WAIT_MS).
    batch_wait_ms: int = 0

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
    # `max_lifetime` is when the credentials stop being accepted: the stream ends as `auth_expired`.
    credentials_end: bool = False


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
    workers: int = 1  # web processes on one listening address (WEB_WORKERS, `auto` resolved)
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
    grant_claim: str = "grant"  # mandatory filters (see access/grants.py); empty: none read from tokens
    # A grant whose `{claim}` placeholders are filled from each token (SSE_JWT_GRANT_TEMPLATE); None: off.
    grant_template: dict[str, tuple[str, ...]] | None = None
    grant_required: bool = False  # a token without a grant is refused


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
    multiprocess_dir: str = ""  # PROMETHEUS_MULTIPROC_DIR: /metrics adds up every process writing there


@dataclass(frozen=True, slots=True)
class CanaryConfig:
    interval: float
    max_age: float

    @property
    def enabled(self) -> bool:
        return self.interval > 0


@dataclass(frozen=True, slots=True)
class RegistryConfig:
    """A Confluent-compatible Schema Registry, for values and keys in the Confluent wire format."""

    url: str = ""
    basic_auth: str = field(default="", repr=False)
    bearer_token: str = field(default="", repr=False)
    cafile: str = ""
    retry_seconds: float = 30.0
    cache_size: int = 1000

    @property
    def enabled(self) -> bool:
        return bool(self.url)


# --- Redis: one server by URL, or a master found through Sentinel ------------------------------

REDIS_SCHEMES = ("redis", "rediss", "unix")
SENTINEL_SCHEMES = ("redis+sentinel", "rediss+sentinel")
SENTINEL_PORT = 26379
SENTINEL_FORM = (
    "redis+sentinel://[user:password@]host1:26379,host2:26379/<master-name>/<db> "
    "(rediss+sentinel:// for TLS to the master and the sentinels)"
)
# The messages never quote the URL: a password written without percent-encoding would show.
REDIS_URL_SCHEME = (
    "REDIS_URL must start with redis://, rediss://, unix://, redis+sentinel:// or rediss+sentinel://."
)
SENTINEL_URL_INVALID = "REDIS_URL is not a valid Sentinel URL: {problem}. Its form is " + SENTINEL_FORM + "."
SENTINEL_NO_HOSTS = "it lists no sentinel"
SENTINEL_BAD_ADDRESS = (
    "sentinel {index} is not host:port (a host name, an IPv4 address or an [IPv6] address, "
    "and a port from 1 to 65535)"
)
SENTINEL_NO_MASTER = "it names no master after the sentinels"
SENTINEL_BAD_MASTER = "the master name may hold only letters, digits, '.', '_' and '-'"
SENTINEL_BAD_DB = "the database is not a number from 0 to 999999999"
SENTINEL_EXTRA_PATH = "it has more than /<master-name>/<db> after the sentinels"
SENTINEL_QUERY = (
    "it has a query or a fragment ('?' or '#'; percent-encode them in a password; TLS files are "
    "REDIS_SSL_CAFILE, REDIS_SSL_CERTFILE and REDIS_SSL_KEYFILE)"
)
SENTINEL_PASSWORD_UNUSED = (
    "REDIS_SENTINEL_PASSWORD is set but REDIS_URL is not a redis+sentinel:// or rediss+sentinel:// URL."
)
REDIS_TLS_UNUSED = (
    "REDIS_SSL_* files are set but REDIS_URL is not a rediss:// or rediss+sentinel:// URL: "
    "use TLS, or unset them."
)
REDIS_TLS_PAIR = "REDIS_SSL_CERTFILE and REDIS_SSL_KEYFILE go together: set both or neither."

_SENTINEL_HOST = re.compile(r"[A-Za-z0-9._-]+|\[[0-9A-Fa-f:.]+\]", re.ASCII)
_SENTINEL_PORT = re.compile(r"[0-9]{1,5}", re.ASCII)
_MASTER_NAME = re.compile(r"[A-Za-z0-9._-]+", re.ASCII)
_DB = re.compile(r"[0-9]{1,9}", re.ASCII)


@dataclass(frozen=True, slots=True)
class RedisTls:
    """Files for TLS to Redis (and to the sentinels): `REDIS_SSL_*`; empty: the system's CAs."""

    cafile: str = ""
    certfile: str = ""
    keyfile: str = ""

    def options(self) -> dict[str, str]:
        """redis-py's names for the files that are set."""
        named = {"ssl_ca_certs": self.cafile, "ssl_certfile": self.certfile, "ssl_keyfile": self.keyfile}
        return {name: path for name, path in named.items() if path}


@dataclass(frozen=True, slots=True)
class SentinelConfig:
    """Where the master is asked for: the sentinels, the master's name, and how to reach both."""

    addresses: tuple[tuple[str, int], ...]
    master_name: str
    db: int = 0
    tls: bool = False
    username: str = ""
    password: str = field(default="", repr=False)  # the master's (and its replicas')
    sentinel_password: str = field(default="", repr=False)  # the sentinels' own, if they have one

    def url(self) -> str:
        """The REDIS_URL that parses back to this."""
        scheme = SENTINEL_SCHEMES[self.tls]
        userinfo = quote(self.username, safe="")
        if self.password:
            userinfo += ":" + quote(self.password, safe="")
        hosts = ",".join(
            f"[{host}]:{port}" if ":" in host else f"{host}:{port}" for host, port in self.addresses
        )
        return f"{scheme}://{userinfo + '@' if userinfo else ''}{hosts}/{self.master_name}/{self.db}"


@dataclass(frozen=True, slots=True)
class RedisConfig:
    """The Redis of the channel layer (`REDIS_URL`): one server by its URL, or through Sentinel."""

    url: str = field(default="", repr=False)  # a plain URL, as given; empty with `sentinel`
    sentinel: SentinelConfig | None = None
    tls_files: RedisTls = RedisTls()

    def connection_options(self, *, socket_timeout: float, socket_connect_timeout: float) -> dict[str, Any]:
        """The keyword arguments of channels_redis' `create_pool` (one entry of the layer's `hosts`),
        and so of every Redis client this service makes."""
        sockets = {"socket_timeout": socket_timeout, "socket_connect_timeout": socket_connect_timeout}
        if self.sentinel is None:
            return {"address": self.url, **sockets, **self.tls_files.options()}
        tls = {"ssl": True, **self.tls_files.options()} if self.sentinel.tls else {}
        credentials = {"username": self.sentinel.username, "password": self.sentinel.password}
        # A sentinel answers at once or not at all: the master's long read timeout is for the
        # layer's blocking receive, and must not hold up the search for the master.
        sentinel_options = {
            **({"password": self.sentinel.sentinel_password} if self.sentinel.sentinel_password else {}),
            "socket_timeout": socket_connect_timeout,
            "socket_connect_timeout": socket_connect_timeout,
            **tls,
        }
        return {
            "sentinels": list(self.sentinel.addresses),
            "master_name": self.sentinel.master_name,
            "db": self.sentinel.db,
            **{name: value for name, value in credentials.items() if value},
            **sockets,
            **tls,
            "sentinel_kwargs": sentinel_options,
        }


def redis_url_parse(
    url: str, *, sentinel_password: str = "", tls_files: RedisTls = RedisTls()
) -> RedisConfig:
    """Read REDIS_URL (with REDIS_SENTINEL_PASSWORD and the REDIS_SSL_* files); raise
    ImproperlyConfigured with one of the messages above when it cannot be used."""
    scheme, separator, rest = url.partition("://")
    scheme = scheme.lower()
    if not separator or scheme not in REDIS_SCHEMES + SENTINEL_SCHEMES:
        raise ImproperlyConfigured(REDIS_URL_SCHEME)
    if tls_files.options() and scheme not in ("rediss", "rediss+sentinel"):
        raise ImproperlyConfigured(REDIS_TLS_UNUSED)
    if bool(tls_files.certfile) != bool(tls_files.keyfile):
        raise ImproperlyConfigured(REDIS_TLS_PAIR)
    if scheme in REDIS_SCHEMES:
        if sentinel_password:
            raise ImproperlyConfigured(SENTINEL_PASSWORD_UNUSED)
        return RedisConfig(url=url, tls_files=tls_files)
    try:
        sentinel = _sentinel_parse(rest, tls=scheme == "rediss+sentinel", sentinel_password=sentinel_password)
    except ValueError as problem:
        raise ImproperlyConfigured(SENTINEL_URL_INVALID.format(problem=problem)) from None
    return RedisConfig(sentinel=sentinel, tls_files=tls_files)


def _sentinel_parse(rest: str, *, tls: bool, sentinel_password: str) -> SentinelConfig:
    """`[user:password@]host:port,.../<master-name>[/<db>]`, the part after the scheme."""
    if "?" in rest or "#" in rest:
        raise ValueError(SENTINEL_QUERY)
    authority, _, path = rest.partition("/")
    userinfo, _, hosts = authority.rpartition("@")
    username, _, password = userinfo.partition(":")
    if not hosts:
        raise ValueError(SENTINEL_NO_HOSTS)
    master_name, _, db = path.partition("/")
    if not master_name:
        raise ValueError(SENTINEL_NO_MASTER)
    if not _MASTER_NAME.fullmatch(master_name):
        raise ValueError(SENTINEL_BAD_MASTER)
    if "/" in db:
        raise ValueError(SENTINEL_EXTRA_PATH)
    if db and not _DB.fullmatch(db):
        raise ValueError(SENTINEL_BAD_DB)
    addresses = tuple(_sentinel_address(address, index) for index, address in enumerate(hosts.split(","), 1))
    return SentinelConfig(
        addresses=addresses,
        master_name=master_name, db=int(db or 0), tls=tls, username=unquote(username),
        password=unquote(password), sentinel_password=sentinel_password,
    )


def _sentinel_address(address: str, index: int) -> tuple[str, int]:
    bracketed = address.startswith("[")
    host, colon, port = address.rpartition(":") if not bracketed or "]:" in address else (address, "", "")
    if not colon:
        host, port = address, str(SENTINEL_PORT)
    if not (_SENTINEL_HOST.fullmatch(host) and _SENTINEL_PORT.fullmatch(port) and 0 < int(port) < 65536):
        raise ValueError(SENTINEL_BAD_ADDRESS.format(index=index))
    if host.startswith("["):
        host = host[1:-1]
        try:
            IPv6Address(host)
        except ValueError:
            raise ValueError(SENTINEL_BAD_ADDRESS.format(index=index)) from None
    return host, int(port)


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
        batch_wait_ms=settings.CONSUMER_BATCH_WAIT_MS,
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
            ssl_key_password=settings.KAFKA_SSL_KEY_PASSWORD,
            oauth=OAuthClient(
                token_endpoint=settings.KAFKA_OAUTH_TOKEN_ENDPOINT,
                client_id=settings.KAFKA_OAUTH_CLIENT_ID,
                client_secret=settings.KAFKA_OAUTH_CLIENT_SECRET,
                scope=settings.KAFKA_OAUTH_SCOPE,
            ) if settings.KAFKA_SASL_MECHANISM == "OAUTHBEARER" else None,
            aws_region=settings.KAFKA_AWS_REGION,
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
        workers=settings.WEB_WORKERS,
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
        grant_claim=settings.SSE_JWT_GRANT_CLAIM,
        grant_template=settings.SSE_JWT_GRANT_TEMPLATE,
        grant_required=settings.SSE_JWT_GRANT_REQUIRED,
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
        multiprocess_dir=settings.PROMETHEUS_MULTIPROC_DIR,
    )


@cache
def canary_config() -> CanaryConfig:
    return CanaryConfig(interval=settings.CANARY_INTERVAL, max_age=settings.CANARY_MAX_AGE)


@cache
def redis_config() -> RedisConfig:
    return redis_url_parse(
        settings.REDIS_URL,
        sentinel_password=settings.REDIS_SENTINEL_PASSWORD,
        tls_files=RedisTls(
            cafile=settings.REDIS_SSL_CAFILE,
            certfile=settings.REDIS_SSL_CERTFILE,
            keyfile=settings.REDIS_SSL_KEYFILE,
        ),
    )


@cache
def registry_config() -> RegistryConfig:
    return RegistryConfig(
        url=settings.SCHEMA_REGISTRY_URL,
        basic_auth=settings.SCHEMA_REGISTRY_BASIC_AUTH,
        bearer_token=settings.SCHEMA_REGISTRY_BEARER_TOKEN,
        cafile=settings.SCHEMA_REGISTRY_CAFILE,
        retry_seconds=settings.SCHEMA_REGISTRY_RETRY_SECONDS,
        cache_size=settings.SCHEMA_REGISTRY_CACHE_SIZE,
    )


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
        canary_config, viewer_config, server_config, redis_config, registry_config,
    ):
        build.cache_clear()
