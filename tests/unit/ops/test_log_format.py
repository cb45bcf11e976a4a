"""JSON log lines and the redaction filter, on real logging records."""

from __future__ import annotations

import io
import json
import logging
import time

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from crm_events.ops.log_format import JsonFormatter, RedactFilter, redact
from tests.unit.test_config import SCHEMES, passwords, users

JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJ4IiwiZXhwIjoxfQ."
    "c2lnbmF0dXJlLXNpZ25hdHVyZS1zaWduYXR1cmU"
)


@pytest.mark.parametrize(
    ("text", "leaked"),
    [
        ("brokers SASL_SSL://svc:hunter2@kafka:9093", "hunter2"),
        ("brokers sasl://user:p@ssw0rd@kafka:9093", "ssw0rd"),  # the userinfo ends at the last @
        ("redis at redis://:r3dispass@cache:6379/0", "r3dispass"),
        ("Authorization: Bearer abc.def-ghi", "abc.def-ghi"),
        (f"token was {JWT} ok", JWT),
        ("Cookie: sessionid=s3ss10n; crm_token=zzz", "s3ss10n"),
        ("headers={'cookie': 'crm_token=zzz'}", "zzz"),
        ("sasl_plain_password='hunter2' sasl_plain_username='svc'", "hunter2"),
        ('{"password": "pw123456"}', "pw123456"),
        ("METRICS_TOKEN=tok-9876", "tok-9876"),
    ],
)
def test_redact_patterns(text, leaked):
    assert leaked not in redact(text)
    assert "***" in redact(text)


def test_redact_keeps_ordinary_text():
    text = "stream closed: slow; topic crm.deals partition 2 offset 41"
    assert redact(text) == text


def log_through(formatter: logging.Formatter, secrets=(), **call) -> str:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    handler.addFilter(RedactFilter(secrets=secrets))
    logger = logging.getLogger(f"test.redact.{id(stream)}")
    logger.propagate = False
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        logger.info(*call.pop("args"), **call)
    finally:
        logger.removeHandler(handler)
    return stream.getvalue()


def test_json_line_has_the_fields_and_extras_and_no_secret():
    line = log_through(
        JsonFormatter(), secrets=["plain-s3cret-value"],
        args=("record %s:%s@%s from %s", "crm.deals", 1, 41, "kafka://u:plain-s3cret-value@b:9092"),
        extra={"topic": "crm.deals", "partition": 1, "offset": 41, "client": "198.51.100.7",
               "headers": {"authorization": f"Bearer {JWT}"}},
    )
    assert line.endswith("\n") and line.count("\n") == 1
    entry = json.loads(line)
    assert set(entry) == {
        "timestamp", "level", "logger", "message", "topic", "partition", "offset", "client", "headers",
    }
    assert (entry["level"], entry["topic"], entry["partition"], entry["offset"]) == (
        "INFO", "crm.deals", 1, 41)
    assert entry["message"] == "record crm.deals:1@41 from kafka://***@b:9092"
    assert entry["timestamp"].endswith("+00:00")
    assert "plain-s3cret-value" not in line and JWT not in line


def test_literal_secrets_and_tracebacks_are_masked():
    def fail():
        raise RuntimeError("login failed with password-is-Xy7Zq")

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RedactFilter(secrets=["password-is-Xy7Zq", "", "abc"]))
    logger = logging.getLogger("test.redact.traceback")
    logger.propagate = False
    logger.addHandler(handler)
    try:
        fail()
    except RuntimeError:
        logger.exception("connect: %s", "using password-is-Xy7Zq")
    finally:
        logger.removeHandler(handler)
    entry = json.loads(stream.getvalue())
    assert "password-is-Xy7Zq" not in stream.getvalue()
    assert "RuntimeError" in entry["exception"]
    # Secrets shorter than 4 characters are not masked literally: "abc" would eat words.
    assert RedactFilter(secrets=["abc"]).secrets == []


def test_plain_format_is_redacted_too():
    text = log_through(
        logging.Formatter("%(levelname)s %(name)s %(message)s"), args=("auth header %s", f"Bearer {JWT}")
    )
    assert text.startswith("INFO test.redact.") and text.strip().endswith("auth header Bearer ***")


@example(scheme="sasl://", user="user", password="p@ss")  # showed `ss@host`
@example(scheme="redis://", user="", password="@@@@")
# A scheme is what tells a URL in free text (`record crm.deals:1@41` is no credential).
@given(scheme=st.sampled_from([scheme for scheme in SCHEMES if scheme]), user=users, password=passwords)
def test_a_url_in_a_log_line_never_shows_its_password(scheme, user, password):
    masked = redact(f"connecting to {scheme}{user}:{password}@host:9092 now")
    assert masked == f"connecting to {scheme}***@host:9092 now"
    assert password not in masked.replace("host:9092", "").replace(scheme, "")


@pytest.mark.parametrize(
    ("text", "tail"),
    [
        # An unbounded `[\w+.-]*://` backtracked over the whole run at every start.
        ("a" * 200_000 + " redis://:pw123456@cache:6379", " redis://***@cache:6379"),
        # A `\b[\w-]*password` prefix did the same from every word boundary: 6 s for 10 KB, and
        # Daphne's access log (any client's query string) goes through this filter.
        ("GET /crm-events?x=" + "a-" * 50_000 + " password=pw123456", " password=***"),
    ],
    ids=["scheme-run", "dashed-run"],
)
def test_long_hostile_text_is_redacted_in_linear_time(text, tail):
    started = time.perf_counter()
    masked = redact(text)
    assert time.perf_counter() - started < 2.0  # about 0.1 s; the quadratic patterns took minutes
    assert "pw123456" not in masked and masked.endswith(tail)
