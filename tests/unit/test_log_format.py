"""JSON log lines and the redaction filter, on real logging records."""

from __future__ import annotations

import io
import json
import logging

import pytest

from crm_events.log_format import JsonFormatter, RedactFilter, redact

JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJ4IiwiZXhwIjoxfQ."
    "c2lnbmF0dXJlLXNpZ25hdHVyZS1zaWduYXR1cmU"
)


@pytest.mark.parametrize(
    ("text", "leaked"),
    [
        ("brokers SASL_SSL://svc:hunter2@kafka:9093", "hunter2"),
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
