"""A stream's audit lines carry what docs/security.md's "Audit" section says (streams/audit.py)."""

from __future__ import annotations

import json
import logging

import pytest
from django.http import QueryDict
from prometheus_client import REGISTRY

from crm_events.access.auth import ANONYMOUS, Principal
from crm_events.access.grants import grant_parse
from crm_events.ops.log_format import JsonFormatter, RedactFilter
from crm_events.streams.audit import StreamAudit, grant_rule

GRANT = {"kind": ["deal"], "where": ["tenant_id:acme"]}
COMMON = (
    "stream_id", "subject", "grant_rule", "grant_owner", "grant", "topics", "filters", "resumed", "resume_id",
)
END = ("reason", "events", "started_at", "ended_at", "duration")


@pytest.mark.parametrize(
    ("principal", "rule"),
    [
        (Principal(subject="user:root", grant_owner="superuser"), "superuser"),
        (Principal(subject="user:ana", grant=grant_parse(GRANT), grant_owner="user:ana"), "user"),
        (Principal(subject="user:bo", grant=grant_parse(GRANT), grant_owner="group:sales"), "group"),
        (Principal(subject="jwt:x", grant=grant_parse(GRANT)), "token_grant"),
        (Principal(subject="jwt:x", allowed_topics=frozenset({"t"})), "claims"),
        (Principal(subject=ANONYMOUS), "none"),
    ],
)
def test_what_limits_a_stream_is_named(principal, rule):
    assert grant_rule(principal) == rule


def test_the_start_and_end_lines_carry_who_what_and_how_much(caplog):
    principal = Principal(subject="user:bo", grant=grant_parse(GRANT), grant_owner="group:sales")
    query = QueryDict("topic=crm.deals&kind=deal.won&where=stage:won&from=earliest")
    audit = StreamAudit.of_request(principal, query, topics=("crm.deals",), resume_id="abc")
    before = REGISTRY.get_sample_value("aetherlink_sse_stream_audit_events_total", {"rule": "group"}) or 0
    with caplog.at_level(logging.INFO, logger="crm_events.audit"):
        audit.started()
        audit.ended(reason="grants_changed", events=7)
    redact = RedactFilter()  # as the service's log handler does, before formatting
    start, end = (json.loads(JsonFormatter().format(r)) for r in caplog.records if redact.filter(r))
    for line in (start, end):  # containers travel as JSON text
        line.update({k: json.loads(line[k]) for k in ("grant", "topics", "filters")})
    expected = {
        "stream_id": audit.stream_id, "subject": "user:bo", "grant_rule": "group",
        "grant_owner": "group:sales", "grant": GRANT, "topics": ["crm.deals"],
        "filters": {"topic": ["crm.deals"], "kind": ["deal.won"], "where": ["stage:won"]},
        "resumed": True, "resume_id": "abc",
    }
    assert {k: start[k] for k in COMMON} == expected and start["audit"] == "stream_start"
    assert {k: end[k] for k in COMMON} == expected and end["audit"] == "stream_end"
    assert (end["reason"], end["events"]) == ("grants_changed", 7)
    assert end["started_at"] <= end["ended_at"] and end["duration"] >= 0 and set(END) <= set(end)
    after = REGISTRY.get_sample_value("aetherlink_sse_stream_audit_events_total", {"rule": "group"})
    assert after - before == 7
