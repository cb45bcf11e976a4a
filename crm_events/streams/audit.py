"""Who streamed what: one structured line when a stream starts and one when it ends.

Both go to the `crm_events.audit` logger with these `extra` fields (in the JSON log format,
each is a field of the line; see docs/security.md, "Audit: who streamed what"):

- `audit`: `stream_start` or `stream_end`;
- `subject`: `user:NAME`, `jwt:SUB` or `anonymous`;
- `grant_rule`: what limits the stream: `superuser`, `user`, `group` (a session user's grant
  row), `token_grant`, `claims` (a token's topics and kinds only), `none` (no authentication);
- `grant_owner`: the grant row in force (`user:NAME`, `group:NAME`), or null;
- `grant`: the grant in force in the stream's filter language (JSON text), or null;
- `topics`: the stream's topics (JSON text); `filters`: the client's own filter parameters,
  as asked (JSON text: `{"kind": ["deal.won"], "where": [...]}`);
- `resumed`: whether it resumed, and `resume_id`: from which id (null if it did not);
- `stream_id`: the same for both lines of one stream;
and on `stream_end` also `reason` (why it ended: `client` when the client left), `events`
(events delivered to it, replayed and live), `started_at`, `ended_at` (Unix seconds) and
`duration` (seconds). A metric counts streams and their events per `grant_rule`.
"""

from __future__ import annotations

import json
import logging
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from django.http import QueryDict

from crm_events import metrics
from crm_events.access.auth import Principal
from crm_events.access.grants import GRANT_PARAMETERS

logger = logging.getLogger("crm_events.audit")


def grant_rule(principal: Principal) -> str:
    """What limits a principal's streams, as audit lines and metrics name it."""
    if principal.grant_owner is not None:
        owner = principal.grant_owner
        return owner.partition(":")[0] if ":" in owner else owner  # user:NAME, group:NAME, superuser
    if principal.is_anonymous:
        return "none"
    return "token_grant" if principal.grant is not None else "claims"


def _json(value: object) -> str:
    # Containers go as JSON text: the log's redaction turns any other container into its repr.
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


@dataclass
class StreamAudit:
    principal: Principal
    topics: tuple[str, ...]
    filters: dict[str, list[str]]
    resume_id: str | None
    # Random, not a counter: unique across web processes and their restarts.
    stream_id: str = field(default_factory=lambda: secrets.token_hex(8))
    started_at: float = field(default_factory=time.time)

    @classmethod
    def of_request(
        cls, principal: Principal, query: QueryDict, *, topics: tuple[str, ...], resume_id: str | None
    ) -> StreamAudit:
        filters = {name: query.getlist(name) for name in GRANT_PARAMETERS if name in query}
        return cls(principal=principal, topics=topics, filters=filters, resume_id=resume_id)

    def fields(self) -> dict[str, Any]:
        principal = self.principal
        return {
            "stream_id": self.stream_id, "subject": principal.subject, "grant_rule": grant_rule(principal),
            "grant_owner": principal.grant_owner if principal.grant_owner != "superuser" else None,
            "grant": _json(principal.grant.as_object()) if principal.grant is not None else None,
            "topics": _json(list(self.topics)), "filters": _json(self.filters),
            "resumed": self.resume_id is not None, "resume_id": self.resume_id,
        }

    def started(self) -> None:
        metrics.stream_granted(grant_rule(self.principal))
        logger.info("stream %s started for %s", self.stream_id, self.principal.subject,
                    extra={"audit": "stream_start", **self.fields()})

    def ended(self, *, reason: str, events: int) -> None:
        ended_at = time.time()
        metrics.stream_audit_ended(grant_rule(self.principal), events)
        logger.info(
            "stream %s ended for %s (%s): %d events", self.stream_id, self.principal.subject, reason, events,
            extra={
                "audit": "stream_end", **self.fields(), "reason": reason, "events": events,
                "started_at": round(self.started_at, 3), "ended_at": round(ended_at, 3),
                "duration": round(ended_at - self.started_at, 3),
            },
        )
