"""Daphne's access log, sent through Python logging instead of straight to stdout.

Daphne writes one NCSA line per request to stdout by itself, past `LOGGING`: no
JSON with `LOG_FORMAT=json`, and no redaction of the path and query string, where
a careless client may put a token. Under Daphne, `access_log_integrate()` makes
each entry a record of the `daphne.access` logger (fields `client`, `status`,
`bytes`), which the console handler formats and redacts like every other line.
"""

from __future__ import annotations

import logging
import sys
from datetime import datetime

logger = logging.getLogger("daphne.access")


def access_log_entry(
    generator: object, host: str, date: datetime, request: str, status: int | None = None,
    length: int | None = None, ident: str | None = None, user: str | None = None,
) -> None:
    logger.info(
        '%s "%s" %s %s', host, request, status or "-", length or "-",
        extra={"client": host, "status": status, "bytes": length},
    )


def access_log_integrate() -> None:
    """Route Daphne's access log through logging when this process is Daphne; else nothing."""
    access = sys.modules.get("daphne.access")
    if access is not None:
        access.AccessLogGenerator.write_entry = access_log_entry
