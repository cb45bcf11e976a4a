"""Django settings for AetherLink CRM Events.

Every value is read here, once, from the environment (or a `.env` file beside
`manage.py`) with django-environ. The rest of the code reads `django.conf.settings`
through the typed records in `crm_events.config`, never `os.environ`.
`.env.example` lists every variable with its default.
"""

from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)


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

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "crm_events",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "crm_events.static_files.StaticFilesMiddleware",
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
        "DIRS": [BASE_DIR / "templates"],
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
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
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

# --- Channel layer (Redis) ---------------------------------------------------

REDIS_URL = env.str("REDIS_URL", default="redis://127.0.0.1:6379/0")
# Keys and groups are namespaced, so several deployments (or test runs) can share one Redis.
REDIS_PREFIX = env.str("REDIS_PREFIX", default="aetherlink")
# The consumer sends one layer message per batch of records to each web process;
# a web process that cannot drain its channel this deep is repaired from Kafka.
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {
            "hosts": [REDIS_URL],
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

# --- SSE streams -------------------------------------------------------------

SSE_HEARTBEAT_INTERVAL = _positive_float("SSE_HEARTBEAT_INTERVAL", 15.0)
SSE_RETRY_MS = _positive_int("SSE_RETRY_MS", 3000)
SSE_CLIENT_BUFFER = _positive_int("SSE_CLIENT_BUFFER", 1000)
# Bytes Daphne may hold unsent for one client before the stream stops writing to it.
SSE_WRITE_BUFFER_BYTES = _positive_int("SSE_WRITE_BUFFER_BYTES", 256 * 1024)
# Seconds a client may make no progress (write buffer full) before it is sent away to resume.
SSE_STALL_TIMEOUT = _positive_float("SSE_STALL_TIMEOUT", 30.0)
# Seconds after which a stream ends with its resume id (clients reconnect); 0 = never.
SSE_MAX_LIFETIME = env.float("SSE_MAX_LIFETIME", default=3600.0)
# Seconds a stopping web process gives its streams to send their resume ids.
SSE_SHUTDOWN_GRACE = _positive_float("SSE_SHUTDOWN_GRACE", 5.0)

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

# --- Logging -----------------------------------------------------------------

LOG_LEVEL = env.str("LOG_LEVEL", default="INFO").upper()
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain"},
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "aiokafka": {"level": "WARNING"},
        "kafka": {"level": "WARNING"},
    },
}
