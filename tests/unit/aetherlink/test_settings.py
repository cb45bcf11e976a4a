"""Settings are read once at import, so each case imports them in a fresh interpreter."""

import ast
import json
import os
import subprocess
import sys

import pytest

from crm_events.config import SENTINEL_NO_MASTER, SENTINEL_PASSWORD_UNUSED, SENTINEL_URL_INVALID
from tests.support.processes import ROOT

PRINT_SETTINGS = (
    "import json; from aetherlink import settings as s; "
    "print(json.dumps({'brokers': s.KAFKA_BROKERS, 'topic': s.KAFKA_TOPIC, 'topics': s.KAFKA_TOPICS,"
    " 'group': s.KAFKA_GROUP, 'reset': s.KAFKA_OFFSET_RESET, 'redis': s.REDIS_URL,"
    " 'debug': s.DEBUG, 'db': s.DATABASES['default']['ENGINE']}))"
)


def settings_load(**overrides: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KAFKA_", "DJANGO_", "REDIS"))}
    env.update(overrides)
    return subprocess.run(
        [sys.executable, "-c", PRINT_SETTINGS], cwd=ROOT / "tests", env=env,
        capture_output=True, text=True, timeout=60,
    )


def test_defaults_are_the_old_services():
    result = settings_load(DJANGO_SECRET_KEY="k", PYTHONPATH=str(ROOT))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {
        "brokers": ["127.0.0.1:9092"],
        "topic": "aetherlink.events",
        "topics": ["aetherlink.events"],
        "group": "crm-events-sse",
        "reset": "earliest",
        "redis": "redis://127.0.0.1:6379/0",
        "debug": False,
        "db": "django.db.backends.sqlite3",
    }


def test_environment_overrides():
    result = settings_load(
        DJANGO_SECRET_KEY="k", PYTHONPATH=str(ROOT), KAFKA_BROKERS="a:1,b:2",
        KAFKA_TOPIC="x", KAFKA_OFFSET_RESET="latest", KAFKA_GROUP="g",
    )
    loaded = json.loads(result.stdout)
    assert (loaded["brokers"], loaded["topics"], loaded["reset"], loaded["group"]) == (
        ["a:1", "b:2"], ["x"], "latest", "g",
    )


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({}, "DJANGO_SECRET_KEY is not set"),
        ({"DJANGO_SECRET_KEY": "k", "KAFKA_OFFSET_RESET": "newest"},
         "KAFKA_OFFSET_RESET must be 'earliest' or 'latest', got 'newest'."),
        ({"DJANGO_SECRET_KEY": "k", "KAFKA_TOPIC_PARTITIONS": "0"},
         "KAFKA_TOPIC_PARTITIONS must be a positive integer, got 0."),
        ({"DJANGO_SECRET_KEY": "k", "WEB_MAX_HEADER_BYTES": "70000"},
         "WEB_MAX_HEADER_BYTES (70000) must not be larger than WEB_MAX_HEADERS_BYTES (65536)"),
        ({"DJANGO_SECRET_KEY": "k", "WEB_MAX_HEADERS": "0"},
         "WEB_MAX_HEADERS must be a positive integer, got 0."),
        ({"DJANGO_SECRET_KEY": "k", "REDIS_URL": "redis+sentinel://s:26379"},
         SENTINEL_URL_INVALID.format(problem=SENTINEL_NO_MASTER)),
        ({"DJANGO_SECRET_KEY": "k", "REDIS_SENTINEL_PASSWORD": "x"}, SENTINEL_PASSWORD_UNUSED),
        ({"DJANGO_SECRET_KEY": "k", "WEB_WORKERS": "0"},
         "WEB_WORKERS must be a positive number of web processes or auto, got '0'."),
        ({"DJANGO_SECRET_KEY": "k", "SCHEMA_REGISTRY_URL": "http://registry:8080",
          "KAFKA_RETRY_BACKOFF_MAX": "1", "CONSUMER_LIVENESS_MAX_AGE": "20"},
         "SCHEMA_REGISTRY_RETRY_SECONDS (30) must be shorter than CONSUMER_LIVENESS_MAX_AGE (20)"),
    ],
)
def test_bad_settings_fail_at_start_with_a_clear_message(overrides, message):
    result = settings_load(PYTHONPATH=str(ROOT), **overrides)
    assert result.returncode != 0
    assert message in result.stderr


def test_without_a_registry_its_retry_bound_does_not_limit_the_liveness_age():
    result = settings_load(PYTHONPATH=str(ROOT), DJANGO_SECRET_KEY="k", KAFKA_RETRY_BACKOFF_MAX="1",
                           CONSUMER_LIVENESS_MAX_AGE="3")
    assert result.returncode == 0, result.stderr


def test_debug_needs_no_secret_key():
    result = settings_load(PYTHONPATH=str(ROOT), DJANGO_DEBUG="true")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["debug"] is True


def test_kafka_metadata_is_refreshed_every_30_seconds_unless_set():
    code = "from aetherlink import settings as s; print(s.KAFKA_METADATA_MAX_AGE)"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KAFKA_", "DJANGO_", "REDIS"))}
    for overrides, shown in [({}, "30.0"), ({"KAFKA_METADATA_MAX_AGE": "2.5"}, "2.5")]:
        result = subprocess.run(
            [sys.executable, "-c", code], cwd=ROOT / "tests", capture_output=True, text=True, timeout=60,
            env={**env, "DJANGO_SECRET_KEY": "k", "PYTHONPATH": str(ROOT), **overrides},
        )
        assert result.stdout.strip() == shown, result.stderr
    result = settings_load(DJANGO_SECRET_KEY="k", PYTHONPATH=str(ROOT), KAFKA_METADATA_MAX_AGE="0")
    assert "KAFKA_METADATA_MAX_AGE must be a positive number, got 0.0." in result.stderr


def test_a_sentinel_url_gives_the_channel_layer_the_sentinels_and_the_master():
    code = "from aetherlink import settings as s; print(repr(s.CHANNEL_LAYERS['default']['CONFIG']['hosts']))"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KAFKA_", "DJANGO_", "REDIS"))}
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT / "tests", capture_output=True, text=True, timeout=60,
        env={
            **env, "DJANGO_SECRET_KEY": "k", "PYTHONPATH": str(ROOT),
            "REDIS_URL": "redis+sentinel://:pw@s1:26379,s2:26380/mymaster/1",
            "REDIS_SENTINEL_PASSWORD": "$spw",
        },
    )
    assert result.returncode == 0, result.stderr
    sentinel_sockets = {"socket_timeout": 5.0, "socket_connect_timeout": 5.0}
    assert ast.literal_eval(result.stdout) == [{
        "sentinels": [("s1", 26379), ("s2", 26380)], "master_name": "mymaster", "db": 1, "password": "pw",
        "socket_timeout": 15.0, "socket_connect_timeout": 5.0,
        "sentinel_kwargs": {"password": "$spw", **sentinel_sockets},
    }]


def test_web_workers_is_a_number_or_auto_the_usable_cores():
    code = "from aetherlink import settings as s; print(s.WEB_WORKERS)"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KAFKA_", "DJANGO_", "REDIS", "WEB_"))}
    for overrides, shown in [({}, "1"), ({"WEB_WORKERS": "3"}, "3"),
                             ({"WEB_WORKERS": "auto"}, str(len(os.sched_getaffinity(0))))]:
        result = subprocess.run(
            [sys.executable, "-c", code], cwd=ROOT / "tests", capture_output=True, text=True, timeout=60,
            env={**env, "DJANGO_SECRET_KEY": "k", "PYTHONPATH": str(ROOT), **overrides},
        )
        assert result.stdout.strip() == shown, result.stderr
