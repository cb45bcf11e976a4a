"""Log output: human-readable or JSON lines (`LOG_FORMAT`), and never a secret.

`RedactFilter` sits on the console handler, so it sees every record of every
logger (ours, Django's, Daphne's, aiokafka's) after formatting of the message and
before it is written. It masks, in the message, the extra fields and the
traceback: `user:pass@` in URLs, bearer tokens, anything shaped like a JWT,
cookie headers, `password=`/`secret=`/`token=` style pairs, and the literal values
of the secrets the settings hold (Kafka password, JWT key, metrics token...).
No settings are read here: `aetherlink/settings.py` hands the secret values in.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

MASK = "***"
# Shorter literals would mask ordinary words; the patterns below still catch them in context.
SECRET_MIN_LENGTH = 4

_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # scheme://user:password@host (Kafka SASL URLs, Redis, databases); also user-only userinfo.
    # The userinfo ends at the LAST `@` before a `/` or whitespace: a password may hold an `@`
    # (this masks too much, never too little, when a later `@` follows with no space between).
    # Schemes are short: the bound keeps a long run of word characters from costing n^2.
    (re.compile(r"(?P<scheme>[a-zA-Z][\w+.-]{0,31}://)[^/\s]*@"), r"\g<scheme>" + MASK + "@"),
    (re.compile(r"(?i)\b(bearer|basic)\s+[\w.~+/=-]+"), r"\1 " + MASK),
    (re.compile(r"\beyJ[\w-]*\.[\w-]+\.[\w-]*"), MASK),
    (re.compile(r"(?i)\b(set-cookie|cookie)(['\"]?\s*[:=]\s*['\"]?)[^\r\n'\"]*"), r"\1\2" + MASK),
    (re.compile(r"(?i)\b(sessionid|csrftoken)=[^;\s'\"]+"), r"\1=" + MASK),
    # `sasl_plain_password=...`: the match starts at the key word itself, so whatever precedes it
    # stays as it is. (A `\b[\w-]*` prefix there made the search quadratic in the line's length.)
    (
        re.compile(
            r"(?i)(password|passwd|secret|token|api[_-]?key)(['\"]?\s*[:=]\s*['\"]?)"
            r"(?!\*\*\*)[^\s'\",;&}]+"
        ),
        r"\1\2" + MASK,
    ),
)

# Attributes every LogRecord has; anything else was passed through `extra=`.
_RECORD_ATTRIBUTES = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """`text` with every secret value and every credential-shaped substring masked."""
    for secret in secrets:
        text = text.replace(secret, MASK)
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def record_extras(record: logging.LogRecord) -> dict[str, Any]:
    """The fields a call added with `extra=` (topic, partition, offset, client...)."""
    return {key: value for key, value in vars(record).items() if key not in _RECORD_ATTRIBUTES}


class RedactFilter(logging.Filter):
    """Masks secrets in a record's message, extra fields and traceback. Never drops a record."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        # Longest first, so a secret containing another is masked whole.
        self.secrets = sorted(
            {s for s in secrets if len(s) >= SECRET_MIN_LENGTH}, key=len, reverse=True
        )

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage(), self.secrets)
        record.args = None
        for key, value in record_extras(record).items():
            if not isinstance(value, int | float | bool | None):
                # Containers and objects become their (masked) text: a dict of headers could hide a token.
                setattr(record, key, redact(str(value), self.secrets))
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text, self.secrets)
        if record.stack_info:
            record.stack_info = redact(record.stack_info, self.secrets)
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: timestamp, level, logger, message, then the extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "timestamp": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record_extras(record).items():
            entry.setdefault(key, value)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = record.stack_info
        return json.dumps(entry, default=str, ensure_ascii=False)
