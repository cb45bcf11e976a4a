"""Daphne's access log, as records of the `daphne.access` logger instead of stdout lines.

Daphne writes one NCSA line per request to stdout by itself, past `LOGGING`: no JSON
with `LOG_FORMAT=json`, and no redaction of the path and query string, where a
careless client may put a token. `AccessLog` is what `AetherlinkServer` gives Daphne
as its `action_logger`: each finished request becomes a record (fields `client`,
`status`, `bytes`) that the console handler formats and redacts like every other line.
"""

from __future__ import annotations

import logging
from typing import Any

logger = logging.getLogger("daphne.access")


class AccessLog:
    """Daphne's `action_logger` interface: called with (protocol, action, details)."""

    def __call__(self, protocol: str, action: str, details: dict[str, Any]) -> None:
        if protocol == "http" and action == "complete":
            self.entry(details["client"], f"{details['method']} {details['path']}",
                       status=details["status"], length=details["size"])
        elif protocol == "websocket":
            self.entry(details.get("client", "-"), f"WS{action.upper()} {details.get('path', '')}")

    def entry(
        self, client: str, request: str, *, status: int | None = None, length: int | None = None
    ) -> None:
        logger.info(
            '%s "%s" %s %s', client, request, status or "-", length or "-",
            extra={"client": client, "status": status, "bytes": length},
        )
