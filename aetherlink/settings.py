"""Django settings for AetherLink CRM Events.

Every value is read here, once, from the environment (or a `.env` file: the one in the
working directory, or `AETHERLINK_ENV_FILE`) with django-environ. The rest of the code reads
`django.conf.settings` through the typed records in `crm_events.config`, never `os.environ`.
`.env.example` lists every variable with its default.

State (the SQLite database, collected static files, site template overrides) lives in the
data directory, never beside the code: `AETHERLINK_DATA_DIR` when set; else the checkout
itself when this package runs from one (also an editable install); else, for an installed
wheel, `$XDG_STATE_HOME/aetherlink` (`~/.local/state/aetherlink`).
"""

import json
import math
import os
from ipaddress import ip_address, ip_network
from pathlib import Path
from typing import Any

import environ
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from django.core.exceptions import ImproperlyConfigured

from crm_events.access.grants import GRANT_PARAMETERS
from crm_events.access.jwt_grants import PLACEHOLDER
from crm_events.config import RedisTls, redis_url_parse

# --- Paths: the code, the .env file and the data directory ---------------------------

PACKAGE_DIR = Path(__file__).resolve().parent  # aetherlink/, in a checkout or in site-packages
SOURCE_DIR = PACKAGE_DIR.parent
# Run from a checkout (or an editable install of one): the project's files are beside the package.
CHECKOUT = (SOURCE_DIR / "manage.py").is_file() and (SOURCE_DIR / "pyproject.toml").is_file()

# What a number or a flag may be written as; anything else is refused by name at start.
_EXPECTED = {int: "an integer", float: "a finite number", bool: "true or false"}
_FLAG_WORDS = {*environ.Env.BOOLEAN_TRUE_STRINGS, "false", "off", "no", "n", "0", ""}


# Settings that hold credentials. django-environ reads a value starting with `$` as the name
# of another variable (`A=$B` reads B); a secret is random text and may start with `$`, so
# these are always taken literally. The other settings keep the reference.
_SECRETS = frozenset({
    "DJANGO_SECRET_KEY", "SSE_JWT_KEY", "KAFKA_SASL_PASSWORD", "METRICS_TOKEN", "DATABASE_URL", "REDIS_URL",
    "REDIS_SENTINEL_PASSWORD", "KAFKA_SSL_KEY_PASSWORD", "KAFKA_OAUTH_CLIENT_SECRET",
    "SCHEMA_REGISTRY_BASIC_AUTH", "SCHEMA_REGISTRY_BEARER_TOKEN",
})


class _Env(environ.Env):
    """django-environ, but a value that cannot be read says which variable and why, as
    ImproperlyConfigured: its own ValueError (`int('abc')`) would name neither. Flags are strict
    (`DJANGO_DEBUG=ture` is refused, not read as false), numbers are Python's, finite (no `nan`).
    The variables in `_SECRETS` are never read as a `$NAME` reference to another."""

    def get_value(self, var: str, cast: Any = None, default: Any = environ.Env.NOTSET,
                  parse_default: bool = False) -> Any:
        raw = self.ENVIRON.get(var)
        if var in _SECRETS and raw is not None:
            # Every typed reader (str, db_url...) comes through here; the reference is resolved
            # inside the parent's get_value, so a secret is cast without it.
            return self.parse_value(raw, cast)
        if cast is bool and raw is not None and raw.strip().lower() not in _FLAG_WORDS:
            raise ImproperlyConfigured(_unreadable(var, cast, raw, None))
        # django-environ's own float drops every character but digits, `,`, `.` and `-`:
        # `1e3` would be read as 13, `0:` as 0.
        parse = _finite_float if cast is float else cast
        try:
            return super().get_value(var, cast=parse, default=default, parse_default=parse_default)
        except (ValueError, ImproperlyConfigured) as error:
            raise ImproperlyConfigured(_unreadable(var, cast, raw, error)) from None

    def db_url(self, var: str = environ.Env.DEFAULT_DATABASE_ENV, default: Any = environ.Env.NOTSET,
               engine: str | None = None) -> dict[str, Any]:
        try:
            return super().db_url(var, default=default, engine=engine)
        except ValueError as error:  # a port that is not a number, say
            raise ImproperlyConfigured(_unreadable(var, None, None, error)) from None

    db = db_url


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{value} is not finite")
    return value


def _unreadable(var: str, cast: object, raw: str | None, error: Exception | None) -> str:
    if isinstance(cast, type) and cast in _EXPECTED:  # numbers and flags are no secrets: show what was given
        return f"{var} must be {_EXPECTED[cast]}, got {raw!r}."
    # Anything else (a database URL, say) may hold a password: say why, not what.
    return f"{var} cannot be read: {error}."


env = _Env()
# The real environment only: a .env file cannot name another one.
ENV_FILE = env.str("AETHERLINK_ENV_FILE", default="")
if ENV_FILE and not Path(ENV_FILE).is_file():
    raise ImproperlyConfigured(f"AETHERLINK_ENV_FILE points to {ENV_FILE!r}, which is not a readable file.")
ENV_FILE = ENV_FILE or (str(Path(".env").resolve()) if Path(".env").is_file() else "")
# Only when present: django-environ would otherwise log its absence before LOGGING applies,
# one plain-text line in a JSON log.
if ENV_FILE:
    environ.Env.read_env(ENV_FILE, overwrite=False)


def _data_dir() -> Path:
    """Where state goes (see the module's docstring); an explicit one must exist."""
    explicit = env.str("AETHERLINK_DATA_DIR", default="")
    if explicit:
        path = Path(explicit).expanduser().resolve()
        if not path.is_dir():
            raise ImproperlyConfigured(
                f"AETHERLINK_DATA_DIR points to {explicit!r}, which is not a directory: create it, "
                "or unset it for the default."
            )
        return path
    if CHECKOUT:
        return SOURCE_DIR
    # The XDG base directory spec's place for state (read here, not in .env.example: not ours).
    state_home = Path(os.environ.get("XDG_STATE_HOME", ""))
    if not state_home.is_absolute():  # unset, or relative, which the spec says to ignore
        state_home = Path.home() / ".local" / "state"
    return state_home / "aetherlink"


DATA_DIR = _data_dir()


def _positive_int(name: str, default: int) -> int:
    value = env.int(name, default=default)
    if value <= 0:
        raise ImproperlyConfigured(f"{name} must be a positive integer, got {value}.")
    return value


def _positive_float(name: str, default: float) -> float:
    value = env.float(name, default=default)
    if value <= 0:
        raise ImproperlyConfigured(f"{name} must be a positive number, got {value}.")
    return value


def _non_negative_float(name: str, default: float, meaning_of_zero: str) -> float:
    value = env.float(name, default=default)
    if value < 0:
        raise ImproperlyConfigured(f"{name} must be 0 ({meaning_of_zero}) or a positive number, got {value}.")
    return value


def _port(name: str, default: int) -> int:
    value = env.int(name, default=default)
    if not 0 <= value <= 65535:
        raise ImproperlyConfigured(f"{name} must be a port number from 0 (off) to 65535, got {value}.")
    return value


def _workers(name: str, default: str) -> int:
    text = env.str(name, default=default).strip()
    if text == "auto":
        return len(os.sched_getaffinity(0))
    if not text.isdigit() or int(text) < 1:
        raise ImproperlyConfigured(
            f"{name} must be a positive number of web processes or auto, got {text!r}.")
    return int(text)


def _choice(name: str, default: str, choices: tuple[str, ...]) -> str:
    value = env.str(name, default=default)
    if value not in choices:
        raise ImproperlyConfigured(f"{name} must be one of {', '.join(choices)}, got {value!r}.")
    return value


def _networks(name: str, default: list[str]) -> list[str]:
    """A list of IP networks (`10.0.0.0/8`, `::1/128`, or a bare address), checked at start."""
    values = env.list(name, default=default)
    for value in values:
        try:
            ip_network(value, strict=False)
        except ValueError:
            message = f"{name} must list IP networks like 10.0.0.0/8, got {value!r}."
            raise ImproperlyConfigured(message) from None
    return values


def _ip_address(name: str, default: str) -> str:
    """An address to listen on: an IP address (`127.0.0.1`, `::1`; `0.0.0.0` or `::` for every interface)."""
    value = env.str(name, default=default)
    try:
        ip_address(value)
    except ValueError:
        message = f"{name} must be an IP address like 127.0.0.1, ::1 or 0.0.0.0 (every interface), "
        message += f"got {value!r}."
        raise ImproperlyConfigured(message) from None
    return value


def _grant_template(name: str) -> dict[str, tuple[str, ...]] | None:
    """A grant (JSON) whose strings may name token claims as `{claim}`; each token's values are
    checked when it is filled. Empty: no template."""
    text = env.str(name, default="").strip()
    if not text:
        return None
    message = (f"{name} must be a JSON object whose keys are among {', '.join(GRANT_PARAMETERS)} and whose "
               f"values are non-empty lists of non-empty strings (claims named as {{claim}}), got {text!r}.")
    try:
        value = json.loads(text)
    except ValueError:
        raise ImproperlyConfigured(message) from None
    if not isinstance(value, dict) or not value or not all(
        key in GRANT_PARAMETERS and isinstance(values, list) and values
        and all(isinstance(v, str) and v and _braces_balanced(v) for v in values)
        for key, values in value.items()
    ):
        raise ImproperlyConfigured(message)
    return {key: tuple(values) for key, values in value.items()}


def _braces_balanced(text: str) -> bool:
    """Every brace belongs to a `{claim}` with a name: a stray one would be taken literally."""
    rest = PLACEHOLDER.sub("", text)
    return "{" not in rest and "}" not in rest


def _file_path(name: str) -> str:
    """An optional file setting: empty, or a path to a readable file."""
    value = env.str(name, default="")
    if value and not Path(value).is_file():
        raise ImproperlyConfigured(f"{name} points to {value!r}, which is not a readable file.")
    return value


def _file_secret(name: str, path: str) -> str:
    """The secret in the file at `path`, less ONE trailing line end (`\n` or `\r\n`).

    `openssl rand -hex 32 > key`, `echo`, editors and Kubernetes Secrets made from such a file
    end it with one, which is no part of the secret; anything before it (a second line end
    included) is, byte for byte (read without newline translation).
    """
    try:
        text = Path(path).read_bytes().decode()
    except UnicodeDecodeError:
        raise ImproperlyConfigured(f"{name} points to {path!r}, which does not hold UTF-8 text.") from None
    if text.endswith("\n"):
        return text.removesuffix("\n").removesuffix("\r")
    return text


# --- Django core -------------------------------------------------------------

DEBUG = env.bool("DJANGO_DEBUG", default=False)

# No production default: a missing key outside debug is a startup error, so a
# deployment can never run on a key that is published in this repository.
SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "DJANGO_SECRET_KEY is not set. Set it to a long random string "
            "(or set DJANGO_DEBUG=true for local development)."
        )
    SECRET_KEY = "dev-only-insecure-key-never-use-in-production"

ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])

# --- Behind a TLS proxy (production) ---------------------------------------------
# The names are Django's with a DJANGO_ prefix. docs/production.md lists what
# `manage.py check --deploy` needs; docker/nginx.conf sets the headers these trust.

# Origins (scheme://host[:port]) whose unsafe requests (the admin's login form) pass the CSRF
# check besides this site's own, e.g. https://crm-events.example.com:8443.
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])
for _origin in CSRF_TRUSTED_ORIGINS:
    if "://" not in _origin:
        raise ImproperlyConfigured(
            f"DJANGO_CSRF_TRUSTED_ORIGINS entries need a scheme, like https://{_origin}; got {_origin!r}."
        )
# true: a request that the proxy marks `X-Forwarded-Proto: https` is secure (the CSRF origin,
# secure cookies, HSTS and the https redirect then see the client's scheme). Only behind a
# proxy that always sets or overwrites that header, as docker/nginx.conf does.
SECURE_PROXY_SSL_HEADER = (
    ("HTTP_X_FORWARDED_PROTO", "https") if env.bool("DJANGO_SECURE_PROXY_SSL_HEADER", default=False) else None
)
SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=False)
# The probes and the scrapes answer over plain HTTP (kubelet, compose healthchecks, Prometheus):
# never redirected. aetherlink.probes answers them before any other middleware anyway; this
# covers any other path to them.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^status$", r"^metrics$"]
SECURE_HSTS_SECONDS = env.int("DJANGO_SECURE_HSTS_SECONDS", default=0)
if SECURE_HSTS_SECONDS < 0:
    raise ImproperlyConfigured(
        f"DJANGO_SECURE_HSTS_SECONDS must be 0 (off) or more, got {SECURE_HSTS_SECONDS}."
    )
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", default=False)
SECURE_HSTS_PRELOAD = env.bool("DJANGO_SECURE_HSTS_PRELOAD", default=False)
# An explicit false is a choice (subdomains on plain http, no preload list): `check --deploy`
# stops asking about it. Left unset, it keeps warning, as Django intends.
SILENCED_SYSTEM_CHECKS = [
    check
    for name, check in (("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", "security.W005"),
                        ("DJANGO_SECURE_HSTS_PRELOAD", "security.W021"))
    if name in env.ENVIRON and not env.bool(name)
]
# Cookies only over https whenever debug is off (make dev runs with debug on, over http).
SESSION_COOKIE_SECURE = not DEBUG
CSRF_COOKIE_SECURE = not DEBUG

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "corsheaders",
    "crm_events",
]

MIDDLEWARE = [
    # Django's empty 405 answers in the JSON error shape, the probes' included: outermost.
    "crm_events.ops.method_not_allowed.json_method_not_allowed",
    # /healthz and /readyz for probes, before the Host check, the https redirect and the rest.
    "aetherlink.probes.ProbeMiddleware",
    "corsheaders.middleware.CorsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "crm_events.server.static_files.StaticFilesMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "aetherlink.urls"
ASGI_APPLICATION = "aetherlink.asgi.application"
WSGI_APPLICATION = None

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        # A site's own overrides first (optional), then the project's: admin/index.html, which
        # links the live viewer (a project template: it must win over the admin app's own).
        "DIRS": [DATA_DIR / "templates", PACKAGE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# SQLite only holds auth data; DATABASE_URL switches to any database Django supports.
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{DATA_DIR / 'db.sqlite3'}")}
if "DATABASE_URL" not in env.ENVIRON and not DATA_DIR.is_dir():
    # The default data directory of an install, on first use: SQLite creates no folders.
    try:
        DATA_DIR.mkdir(parents=True, mode=0o700)
    except OSError as error:
        raise ImproperlyConfigured(
            f"The data directory {DATA_DIR} cannot be created ({error.strerror}): set AETHERLINK_DATA_DIR "
            "to a writable directory, or DATABASE_URL."
        ) from None
# Connections are opened when a request needs one and closed when it ends (CONN_MAX_AGE=0), as
# Django advises under ASGI: each request's sync work runs on a thread of its own (asgiref's
# ThreadSensitiveContext) that ends with it, so a kept connection would be left behind on a dead
# thread, one per request, until PostgreSQL's max_connections. A stream does its one session
# lookup on asgiref's shared thread (crm_events/server/asgi_handler.py) and is closed as soon as
# its headers are made, which sends request_finished, which closes that connection: an open
# stream holds none, however long it lasts. Health checks only matter for kept connections.
DATABASES["default"]["CONN_MAX_AGE"] = 0
DATABASES["default"]["CONN_HEALTH_CHECKS"] = False
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # Streams' session lookups share one thread: a database that does not answer must hold it for
    # seconds, not for the kernel's TCP timeout. A URL's own `?connect_timeout=` wins.
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault("connect_timeout", 5)
# Sessions in the database every web process shares (Django's default, stated): a logout
# deletes the row, so the session ends everywhere at once, and a stream's session can be looked
# up again to end it on logout. Signed cookies would need no lookup but cannot be revoked
# before they expire.
SESSION_ENGINE = "django.contrib.sessions.backends.db"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
# Only `collectstatic` writes here; WhiteNoise serves from the finders (below).
STATIC_ROOT = DATA_DIR / "staticfiles"
# WhiteNoise serves the apps' static files straight from where the finders find them,
# so the admin and the live viewer work without a `collectstatic` step.
WHITENOISE_USE_FINDERS = True

# --- Kafka -------------------------------------------------------------------
# The names are the old FastAPI service's, so its deployments keep working.

KAFKA_BROKERS = env.list("KAFKA_BROKERS", default=["127.0.0.1:9092"])
KAFKA_TOPIC = env.str("KAFKA_TOPIC", default="aetherlink.events")
KAFKA_TOPICS = env.list("KAFKA_TOPICS", default=[KAFKA_TOPIC])
KAFKA_GROUP = env.str("KAFKA_GROUP", default="crm-events-sse")
KAFKA_OFFSET_RESET = env.str("KAFKA_OFFSET_RESET", default="earliest")
if KAFKA_OFFSET_RESET not in ("earliest", "latest"):
    raise ImproperlyConfigured(
        f"KAFKA_OFFSET_RESET must be 'earliest' or 'latest', got {KAFKA_OFFSET_RESET!r}."
    )
if not KAFKA_BROKERS or not all(KAFKA_BROKERS):
    raise ImproperlyConfigured("KAFKA_BROKERS must list at least one host:port.")
KAFKA_TOPIC_PARTITIONS = _positive_int("KAFKA_TOPIC_PARTITIONS", 3)
KAFKA_TOPIC_REPLICATION = _positive_int("KAFKA_TOPIC_REPLICATION", 1)
KAFKA_RETRY_BACKOFF_MAX = _positive_float("KAFKA_RETRY_BACKOFF_MAX", 30.0)
# Where consume_events copies records it cannot deliver as they are (with headers saying
# why), as Kafka Connect does with errors.tolerance=all; empty: nowhere (they are still
# delivered, marked `undecodable`, and counted).
KAFKA_DEAD_LETTER_TOPIC = env.str("KAFKA_DEAD_LETTER_TOPIC", default="")
if KAFKA_DEAD_LETTER_TOPIC and KAFKA_DEAD_LETTER_TOPIC in KAFKA_TOPICS:
    raise ImproperlyConfigured("KAFKA_DEAD_LETTER_TOPIC must not be one of the served KAFKA_TOPICS.")
# The one-partition topic where consume_events numbers the batches it publishes, so a resume
# id names a batch instead of spelling out every partition's offset; web processes also write
# the starting positions of catching-up streams to it. Keep it as long as the served topics
# (an id older than it replays what Kafka retains, with a gap frame).
KAFKA_POSITIONS_TOPIC = env.str("KAFKA_POSITIONS_TOPIC", default=f"{KAFKA_GROUP}.positions")
if KAFKA_POSITIONS_TOPIC in KAFKA_TOPICS or KAFKA_POSITIONS_TOPIC == KAFKA_DEAD_LETTER_TOPIC:
    raise ImproperlyConfigured(
        "KAFKA_POSITIONS_TOPIC must differ from the served topics and the dead-letter topic."
    )
# Seconds between metadata refreshes of every Kafka client, and between the web process's
# looks at the served topics: partitions added to a topic reach streams within about this.
KAFKA_METADATA_MAX_AGE = _positive_float("KAFKA_METADATA_MAX_AGE", 30.0)

# --- Kafka security ------------------------------------------------------------
# Applied to every Kafka client the service creates (crm_events.kafka.clients.connection_options).

KAFKA_SECURITY_PROTOCOL = _choice(
    "KAFKA_SECURITY_PROTOCOL", "PLAINTEXT", ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
)
# PLAIN and SCRAM take a user and password; OAUTHBEARER gets its tokens from an OAuth 2 token
# endpoint (client credentials, KAFKA_OAUTH_*); AWS_MSK_IAM signs them with the AWS credentials
# of the process (environment, profile or pod role; the `msk` extra).
KAFKA_SASL_MECHANISM = _choice(
    "KAFKA_SASL_MECHANISM", "PLAIN",
    ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER", "AWS_MSK_IAM"),
)
KAFKA_SASL_USERNAME = env.str("KAFKA_SASL_USERNAME", default="")
KAFKA_SASL_PASSWORD = env.str("KAFKA_SASL_PASSWORD", default="")
KAFKA_OAUTH_TOKEN_ENDPOINT = env.str("KAFKA_OAUTH_TOKEN_ENDPOINT", default="")
KAFKA_OAUTH_CLIENT_ID = env.str("KAFKA_OAUTH_CLIENT_ID", default="")
KAFKA_OAUTH_CLIENT_SECRET = env.str("KAFKA_OAUTH_CLIENT_SECRET", default="")
KAFKA_OAUTH_SCOPE = env.str("KAFKA_OAUTH_SCOPE", default="")
KAFKA_AWS_REGION = env.str("KAFKA_AWS_REGION", default="")
KAFKA_SSL_CAFILE = _file_path("KAFKA_SSL_CAFILE")
KAFKA_SSL_CERTFILE = _file_path("KAFKA_SSL_CERTFILE")
KAFKA_SSL_KEYFILE = _file_path("KAFKA_SSL_KEYFILE")
KAFKA_SSL_KEY_PASSWORD = env.str("KAFKA_SSL_KEY_PASSWORD", default="")
_KAFKA_PASSWORD_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
_kafka_sasl = KAFKA_SECURITY_PROTOCOL.startswith("SASL_")
if _kafka_sasl and KAFKA_SASL_MECHANISM in _KAFKA_PASSWORD_MECHANISMS and not (
    KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD
):
    raise ImproperlyConfigured(
        f"KAFKA_SECURITY_PROTOCOL={KAFKA_SECURITY_PROTOCOL} with KAFKA_SASL_MECHANISM={KAFKA_SASL_MECHANISM} "
        "needs KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD."
    )
if (KAFKA_SASL_USERNAME or KAFKA_SASL_PASSWORD) and not (
    _kafka_sasl and KAFKA_SASL_MECHANISM in _KAFKA_PASSWORD_MECHANISMS
):
    raise ImproperlyConfigured(
        f"KAFKA_SASL_USERNAME/KAFKA_SASL_PASSWORD are set but KAFKA_SECURITY_PROTOCOL is "
        f"{KAFKA_SECURITY_PROTOCOL} and KAFKA_SASL_MECHANISM {KAFKA_SASL_MECHANISM}: use SASL_PLAINTEXT "
        "or SASL_SSL with PLAIN or SCRAM-SHA-256/512, or unset them."
    )
if _kafka_sasl and KAFKA_SASL_MECHANISM == "OAUTHBEARER" and not (
    KAFKA_OAUTH_TOKEN_ENDPOINT and KAFKA_OAUTH_CLIENT_ID and KAFKA_OAUTH_CLIENT_SECRET
):
    raise ImproperlyConfigured(
        "KAFKA_SASL_MECHANISM=OAUTHBEARER needs KAFKA_OAUTH_TOKEN_ENDPOINT, KAFKA_OAUTH_CLIENT_ID "
        "and KAFKA_OAUTH_CLIENT_SECRET (KAFKA_OAUTH_SCOPE is optional)."
    )
if KAFKA_OAUTH_TOKEN_ENDPOINT and not KAFKA_OAUTH_TOKEN_ENDPOINT.startswith(("https://", "http://")):
    raise ImproperlyConfigured(
        "KAFKA_OAUTH_TOKEN_ENDPOINT must be an https:// (or http://) URL, "
        f"not {KAFKA_OAUTH_TOKEN_ENDPOINT!r}."
    )
# MSK serves IAM only on its TLS listener (port 9098; 9198 from outside the VPC).
if KAFKA_SASL_MECHANISM == "AWS_MSK_IAM" and (KAFKA_SECURITY_PROTOCOL != "SASL_SSL" or not KAFKA_AWS_REGION):
    raise ImproperlyConfigured(
        "KAFKA_SASL_MECHANISM=AWS_MSK_IAM needs KAFKA_SECURITY_PROTOCOL=SASL_SSL and KAFKA_AWS_REGION "
        "(the cluster's region, e.g. eu-west-1)."
    )
if not KAFKA_SECURITY_PROTOCOL.endswith("SSL") and (KAFKA_SSL_CAFILE or KAFKA_SSL_CERTFILE):
    raise ImproperlyConfigured(
        f"KAFKA_SSL_* files are set but KAFKA_SECURITY_PROTOCOL is {KAFKA_SECURITY_PROTOCOL}: "
        "use SSL or SASL_SSL, or unset them."
    )
if bool(KAFKA_SSL_CERTFILE) != bool(KAFKA_SSL_KEYFILE):
    raise ImproperlyConfigured("KAFKA_SSL_CERTFILE and KAFKA_SSL_KEYFILE go together: set both or neither.")
if KAFKA_SSL_KEY_PASSWORD and not KAFKA_SSL_KEYFILE:
    raise ImproperlyConfigured(
        "KAFKA_SSL_KEY_PASSWORD is set but KAFKA_SSL_KEYFILE is not: it decrypts that key."
    )

# --- Schema Registry ----------------------------------------------------------
# Values and keys in the Confluent wire format (magic byte 0, a 4-byte schema id) are decoded
# with their schema from this Confluent-compatible registry (crm_events/registry/); empty: they
# are carried as bytes, like any other value.
SCHEMA_REGISTRY_URL = env.str("SCHEMA_REGISTRY_URL", default="").rstrip("/")
if SCHEMA_REGISTRY_URL and not SCHEMA_REGISTRY_URL.startswith(("http://", "https://")):
    raise ImproperlyConfigured(
        f"SCHEMA_REGISTRY_URL must be an http:// or https:// URL, not {SCHEMA_REGISTRY_URL!r}."
    )
# Basic auth (`user:password`, Confluent's USER_INFO form) or a bearer token: one or neither.
SCHEMA_REGISTRY_BASIC_AUTH = env.str("SCHEMA_REGISTRY_BASIC_AUTH", default="")
SCHEMA_REGISTRY_BEARER_TOKEN = env.str("SCHEMA_REGISTRY_BEARER_TOKEN", default="")
if SCHEMA_REGISTRY_BASIC_AUTH and SCHEMA_REGISTRY_BEARER_TOKEN:
    raise ImproperlyConfigured("Set SCHEMA_REGISTRY_BASIC_AUTH or SCHEMA_REGISTRY_BEARER_TOKEN, not both.")
if SCHEMA_REGISTRY_BASIC_AUTH and ":" not in SCHEMA_REGISTRY_BASIC_AUTH:
    raise ImproperlyConfigured("SCHEMA_REGISTRY_BASIC_AUTH is `user:password`.")
SCHEMA_REGISTRY_CAFILE = _file_path("SCHEMA_REGISTRY_CAFILE")
# Seconds a schema is asked for again and again, with backoff, while the registry cannot be
# reached, before the records that need it are delivered marked (and dead-lettered). The
# consume loop waits meanwhile (order is kept), so it must stay under CONSUMER_LIVENESS_MAX_AGE.
SCHEMA_REGISTRY_RETRY_SECONDS = _positive_float("SCHEMA_REGISTRY_RETRY_SECONDS", 30.0)
# Schemas kept per process (compiled readers, least recently used dropped first).
SCHEMA_REGISTRY_CACHE_SIZE = _positive_int("SCHEMA_REGISTRY_CACHE_SIZE", 1000)

# --- Channel layer (Redis) ---------------------------------------------------

# redis://, rediss:// (TLS) or unix://: one Redis. redis+sentinel:// or rediss+sentinel://: the
# master that Sentinel names, followed through failovers (crm_events.config.redis_url_parse).
REDIS_URL = env.str("REDIS_URL", default="redis://127.0.0.1:6379/0")
# The sentinels' own password (their `requirepass`), when they have one; the master's is in the URL.
REDIS_SENTINEL_PASSWORD = env.str("REDIS_SENTINEL_PASSWORD", default="")
# TLS files for rediss:// and rediss+sentinel:// (the master and the sentinels); empty: system CAs.
REDIS_SSL_CAFILE = _file_path("REDIS_SSL_CAFILE")
REDIS_SSL_CERTFILE = _file_path("REDIS_SSL_CERTFILE")
REDIS_SSL_KEYFILE = _file_path("REDIS_SSL_KEYFILE")
_REDIS = redis_url_parse(
    REDIS_URL,
    sentinel_password=REDIS_SENTINEL_PASSWORD,
    tls_files=RedisTls(REDIS_SSL_CAFILE, REDIS_SSL_CERTFILE, REDIS_SSL_KEYFILE),
)
# Keys and groups are namespaced, so several deployments (or test runs) can share one Redis.
REDIS_PREFIX = env.str("REDIS_PREFIX", default="aetherlink")
# The consumer sends one layer message per batch of records to each web process;
# a web process that cannot drain its channel this deep is repaired from Kafka.
# A receive blocks in Redis for up to 5 s (channels-redis' BZPOPMIN); redis-py's default
# socket timeout is also 5 s, so an idle receive could time out on our side just as
# Redis answered, dropping the connection (and a message with it). Wait longer.
REDIS_SOCKET_TIMEOUT = 15.0
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "crm_events.channel_layer.RedisChannelLayer",
        "CONFIG": {
            "hosts": [
                _REDIS.connection_options(socket_timeout=REDIS_SOCKET_TIMEOUT, socket_connect_timeout=5.0)
            ],
            "prefix": REDIS_PREFIX,
            "capacity": 5000,
            "expiry": 60,
            "group_expiry": 86400,
        },
    }
}

# --- Consumer and readiness --------------------------------------------------

CONSUMER_HEARTBEAT_INTERVAL = _positive_float("CONSUMER_HEARTBEAT_INTERVAL", 5.0)
READY_HEARTBEAT_MAX_AGE = _positive_float("READY_HEARTBEAT_MAX_AGE", 15.0)
CONSUMER_BATCH_MAX_RECORDS = _positive_int("CONSUMER_BATCH_MAX_RECORDS", 500)
# Milliseconds Kafka may hold a fetch for more records to come before answering with what it has
# (fetch.max.wait.ms; it answers at once when a full layer message is waiting). Every poll costs
# the consumer a layer publish, a positions-log append and a commit whatever its size, so under
# a steady flow fuller polls cost it far less per record, for at most this much added latency.
# 0: answer as soon as any record is there.
CONSUMER_BATCH_WAIT_MS = round(_non_negative_float("CONSUMER_BATCH_WAIT_MS", 50.0, "no wait"))
# Seconds consume_events may have records to publish with the channel layer accepting none
# before its heartbeats, and so every web process's /readyz, say that publishing is stalled.
CONSUMER_PUBLISH_STALL_SECONDS = _positive_float("CONSUMER_PUBLISH_STALL_SECONDS", 45.0)
# Seconds between consume_events' one-line status (records, rate, lag); 0: none.
CONSUMER_STATUS_INTERVAL = _non_negative_float("CONSUMER_STATUS_INTERVAL", 30.0, "off")
# Port of consume_events' own Prometheus endpoint (lag, events consumed); 0: none.
CONSUMER_METRICS_PORT = _port("CONSUMER_METRICS_PORT", 0)
# The address it listens on: loopback unless asked, as it has no authentication of its own.
CONSUMER_METRICS_ADDRESS = _ip_address("CONSUMER_METRICS_ADDRESS", "127.0.0.1")
# Seconds the consume loop may make no progress (a poll returned, records or none; a batch
# accepted; an attempt to reach Kafka) before that server's /livez answers 503, for a liveness
# probe to restart it. Longer than the longest turn a healthy loop takes: a reconnect backoff
# (KAFKA_RETRY_BACKOFF_MAX) plus a Kafka connect attempt, or a publish waiting out a Redis blip.
CONSUMER_LIVENESS_MAX_AGE = _positive_float("CONSUMER_LIVENESS_MAX_AGE", 120.0)
if CONSUMER_LIVENESS_MAX_AGE <= KAFKA_RETRY_BACKOFF_MAX:
    raise ImproperlyConfigured(
        f"CONSUMER_LIVENESS_MAX_AGE ({CONSUMER_LIVENESS_MAX_AGE:g}) must be longer than "
        f"KAFKA_RETRY_BACKOFF_MAX ({KAFKA_RETRY_BACKOFF_MAX:g}): a loop waiting to reconnect to Kafka "
        "is not stuck."
    )
if SCHEMA_REGISTRY_URL and SCHEMA_REGISTRY_RETRY_SECONDS >= CONSUMER_LIVENESS_MAX_AGE:
    raise ImproperlyConfigured(
        f"SCHEMA_REGISTRY_RETRY_SECONDS ({SCHEMA_REGISTRY_RETRY_SECONDS:g}) must be shorter than "
        f"CONSUMER_LIVENESS_MAX_AGE ({CONSUMER_LIVENESS_MAX_AGE:g}): a loop waiting for the registry "
        "is not stuck."
    )
# Seconds between canary events produced by consume_events; 0 turns the canary off.
CANARY_INTERVAL = _non_negative_float("CANARY_INTERVAL", 0.0, "off")
CANARY_MAX_AGE = _positive_float("CANARY_MAX_AGE", 60.0)
if 0 < CANARY_MAX_AGE <= CANARY_INTERVAL:
    raise ImproperlyConfigured(
        f"CANARY_MAX_AGE ({CANARY_MAX_AGE}) must be longer than CANARY_INTERVAL ({CANARY_INTERVAL})."
    )

# --- SSE streams -------------------------------------------------------------

SSE_HEARTBEAT_INTERVAL = _positive_float("SSE_HEARTBEAT_INTERVAL", 15.0)
SSE_RETRY_MS = _positive_int("SSE_RETRY_MS", 3000)
SSE_CLIENT_BUFFER = _positive_int("SSE_CLIENT_BUFFER", 1000)
# Bytes Daphne may hold unsent for one client before the stream stops writing to it.
SSE_WRITE_BUFFER_BYTES = _positive_int("SSE_WRITE_BUFFER_BYTES", 256 * 1024)
# The kernel's send buffer for a stream's socket (SO_SNDBUF; Linux doubles it). Left to
# itself it grows to several MiB for a client that stops reading, on top of the above.
SSE_SOCKET_SEND_BUFFER = _positive_int("SSE_SOCKET_SEND_BUFFER", 256 * 1024)
# Seconds a client may make no progress (write buffer full) before it is sent away to resume.
SSE_STALL_TIMEOUT = _positive_float("SSE_STALL_TIMEOUT", 30.0)
# Seconds after which a stream ends with its resume id (clients reconnect); 0 = never.
SSE_MAX_LIFETIME = _non_negative_float("SSE_MAX_LIFETIME", 3600.0, "never")
# Seconds a stopping web process gives its streams to send their resume ids.
SSE_SHUTDOWN_GRACE = _positive_float("SSE_SHUTDOWN_GRACE", 5.0)
# The web process's listen backlog (connections accepted by the kernel, not yet by Daphne);
# Twisted's own is 50. The kernel caps it at net.core.somaxconn.
WEB_LISTEN_BACKLOG = _positive_int("WEB_LISTEN_BACKLOG", 4096)
# How many web processes `aetherlink-web` runs on its one listening address (`--workers` wins):
# a number, or `auto` for the cores this process may use. With more than one, a supervisor
# process starts them, restarts one that dies, and passes SIGTERM on (crm_events/server/workers.py).
WEB_WORKERS = _workers("WEB_WORKERS", "1")
# Set for every worker by that supervisor (or by you): prometheus_client's multiprocess mode,
# where /metrics reports every worker of the host (docs/production.md "Several workers on one port").
PROMETHEUS_MULTIPROC_DIR = env.str("PROMETHEUS_MULTIPROC_DIR", default="")
# How large a request's head may be (bytes of each line without its CRLF): a longer request line
# is answered 414, a longer header line, larger headers or more of them 431, in the JSON error
# shape. Far above what the service issues or accepts (a resume id of 4,096 characters in
# Last-Event-ID or the query, a 16 KiB cookie, a JWT listing many topics); Twisted's own line
# limit (16 KiB) closed the connection without a word.
WEB_MAX_REQUEST_LINE_BYTES = _positive_int("WEB_MAX_REQUEST_LINE_BYTES", 32 * 1024)
WEB_MAX_HEADER_BYTES = _positive_int("WEB_MAX_HEADER_BYTES", 32 * 1024)
WEB_MAX_HEADERS_BYTES = _positive_int("WEB_MAX_HEADERS_BYTES", 64 * 1024)
WEB_MAX_HEADERS = _positive_int("WEB_MAX_HEADERS", 200)
if WEB_MAX_HEADER_BYTES > WEB_MAX_HEADERS_BYTES:
    raise ImproperlyConfigured(
        f"WEB_MAX_HEADER_BYTES ({WEB_MAX_HEADER_BYTES}) must not be larger than WEB_MAX_HEADERS_BYTES "
        f"({WEB_MAX_HEADERS_BYTES}), the limit of all headers together."
    )

# --- Live event viewer -------------------------------------------------------

# Public (no staff login) is for development only: it is refused unless DEBUG is on.
VIEWER_PUBLIC = env.bool("VIEWER_PUBLIC", default=False)
if VIEWER_PUBLIC and not DEBUG:
    raise ImproperlyConfigured(
        "VIEWER_PUBLIC=true is for development only and needs DJANGO_DEBUG=true; "
        "unset it to require a staff login."
    )
# Rows the viewer page keeps on screen; older rows are dropped as new ones arrive.
VIEWER_BUFFER_ROWS = _positive_int("VIEWER_BUFFER_ROWS", 1000)

# --- SSE authentication, limits and CORS ------------------------------------------

SSE_AUTH_MODE = _choice("SSE_AUTH_MODE", "none", ("none", "session", "jwt"))
SSE_JWT_ALGORITHM = _choice("SSE_JWT_ALGORITHM", "HS256", ("HS256", "RS256", "ES256"))
SSE_JWT_KEY_FILE = _file_path("SSE_JWT_KEY_FILE")
SSE_JWT_KEY = env.str("SSE_JWT_KEY", default="", multiline=True) or (
    _file_secret("SSE_JWT_KEY_FILE", SSE_JWT_KEY_FILE) if SSE_JWT_KEY_FILE else ""
)
SSE_JWT_AUDIENCE = env.str("SSE_JWT_AUDIENCE", default="")
SSE_JWT_ISSUER = env.str("SSE_JWT_ISSUER", default="")
SSE_JWT_LEEWAY = env.float("SSE_JWT_LEEWAY", default=30.0)
SSE_JWT_COOKIE = env.str("SSE_JWT_COOKIE", default="")
SSE_JWT_TOPICS_CLAIM = env.str("SSE_JWT_TOPICS_CLAIM", default="topics")
SSE_JWT_KINDS_CLAIM = env.str("SSE_JWT_KINDS_CLAIM", default="kinds")
SSE_JWT_GRANT_CLAIM = env.str("SSE_JWT_GRANT_CLAIM", default="grant")
SSE_JWT_GRANT_TEMPLATE = _grant_template("SSE_JWT_GRANT_TEMPLATE")
SSE_JWT_GRANT_REQUIRED = env.bool("SSE_JWT_GRANT_REQUIRED", default=False)
if SSE_AUTH_MODE == "jwt" and not SSE_JWT_KEY:
    raise ImproperlyConfigured("SSE_AUTH_MODE=jwt needs SSE_JWT_KEY or SSE_JWT_KEY_FILE.")
if SSE_AUTH_MODE == "jwt" and SSE_JWT_ALGORITHM == "HS256" and len(SSE_JWT_KEY.encode()) < 32:
    raise ImproperlyConfigured("SSE_JWT_KEY for HS256 must be at least 32 bytes long.")
if SSE_AUTH_MODE == "jwt" and SSE_JWT_ALGORITHM != "HS256":
    _jwt_public_key: object
    try:
        _jwt_public_key = load_pem_public_key(SSE_JWT_KEY.encode())
    except ValueError:
        _jwt_public_key = None
    _key_type = rsa.RSAPublicKey if SSE_JWT_ALGORITHM == "RS256" else ec.EllipticCurvePublicKey
    if not isinstance(_jwt_public_key, _key_type):
        raise ImproperlyConfigured(
            f"SSE_JWT_KEY for {SSE_JWT_ALGORITHM} must be a PEM "
            f"{'RSA' if SSE_JWT_ALGORITHM == 'RS256' else 'EC'} public key."
        )
if not 0 <= SSE_JWT_LEEWAY <= 300:
    raise ImproperlyConfigured(f"SSE_JWT_LEEWAY must be between 0 and 300 seconds, got {SSE_JWT_LEEWAY}.")

SSE_MAX_STREAMS = _positive_int("SSE_MAX_STREAMS", 2000)
SSE_MAX_STREAMS_PER_CLIENT = _positive_int("SSE_MAX_STREAMS_PER_CLIENT", 200)
SSE_MAX_STREAMS_PER_SUBJECT = _positive_int("SSE_MAX_STREAMS_PER_SUBJECT", 20)
SSE_LIMIT_RETRY_AFTER = _positive_int("SSE_LIMIT_RETRY_AFTER", 5)
# Networks of reverse proxies whose X-Forwarded-For is believed; empty: use the socket address.
TRUSTED_PROXIES = _networks("TRUSTED_PROXIES", [])

# django-cors-headers, for the SSE endpoint only. `*` (any origin, no credentials) only without auth.
SSE_CORS_ORIGINS = env.list("SSE_CORS_ORIGINS", default=[])
CORS_URLS_REGEX = r"^/crm-events$"
CORS_ALLOW_METHODS = ("GET", "OPTIONS")
CORS_ALLOW_HEADERS = ("accept", "authorization", "cache-control", "last-event-id")
CORS_EXPOSE_HEADERS = ("retry-after",)
CORS_ALLOW_ALL_ORIGINS = SSE_CORS_ORIGINS == ["*"]
CORS_ALLOWED_ORIGINS = [] if CORS_ALLOW_ALL_ORIGINS else SSE_CORS_ORIGINS
CORS_ALLOW_CREDENTIALS = not CORS_ALLOW_ALL_ORIGINS
if "*" in SSE_CORS_ORIGINS and (SSE_AUTH_MODE != "none" or len(SSE_CORS_ORIGINS) > 1):
    raise ImproperlyConfigured(
        "SSE_CORS_ORIGINS=* (any origin) is only allowed alone and with SSE_AUTH_MODE=none; "
        "list the origins instead."
    )

# --- Metrics -----------------------------------------------------------------------

# /metrics answers a client in METRICS_ALLOWED_NETWORKS or one sending `Authorization: Bearer METRICS_TOKEN`.
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")
METRICS_ALLOWED_NETWORKS = _networks("METRICS_ALLOWED_NETWORKS", ["127.0.0.0/8", "::1/128"])

# --- Logging -----------------------------------------------------------------

LOG_LEVEL = env.str("LOG_LEVEL", default="INFO").upper()
LOG_FORMAT = _choice("LOG_FORMAT", "plain", ("plain", "json"))
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        # Known secret values are masked literally, on top of the patterns (URLs, tokens, cookies).
        "redact": {
            "()": "crm_events.ops.log_format.RedactFilter",
            "secrets": [
                KAFKA_SASL_PASSWORD, KAFKA_SSL_KEY_PASSWORD, KAFKA_OAUTH_CLIENT_SECRET, SSE_JWT_KEY,
                METRICS_TOKEN, SECRET_KEY, REDIS_SENTINEL_PASSWORD, SCHEMA_REGISTRY_BASIC_AUTH,
                SCHEMA_REGISTRY_BEARER_TOKEN,
            ],
        },
    },
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {"()": "crm_events.ops.log_format.JsonFormatter"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT, "filters": ["redact"]},
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "aiokafka": {"level": "WARNING"},
        "kafka": {"level": "WARNING"},
        # Replaces Django's own debug-only console handler, which printed every line twice.
        "django": {"handlers": ["console"], "level": LOG_LEVEL, "propagate": False},
    },
}
