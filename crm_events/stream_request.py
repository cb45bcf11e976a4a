"""Parsing a `/crm-events` request into a `StreamRequest`, or a 400 with a clear reason.

Parameters (all optional):
  topic=NAME          repeatable; a subset of the served topics (default: all)
  kind=TYPE           repeatable; event `type` equal to TYPE or starting with `TYPE.`
  key=KEY             repeatable; record key
  partition=N         repeatable
  where=PATH:VALUE    repeatable, AND-ed; e.g. where=deal.stage:won
  from=latest|earliest  where to start (default latest)
  since=TIME          ISO-8601 (with offset or Z) or epoch milliseconds
  offset=[TOPIC/]P:O  repeatable; start partition P at offset O (others follow from=)
  last_event_id=TOKEN resume; the Last-Event-ID header wins over it (and over from/since)
  canary=1            also show the service's synthetic canary events (hidden by default)
Unknown parameters are rejected rather than ignored, so a typo never widens a stream.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from django.http import QueryDict

from crm_events.exceptions import StreamRequestError
from crm_events.filters import EventFilter, FieldMatch
from crm_events.resume import ResumeTokenError, token_decode

START_LATEST = "latest"
START_EARLIEST = "earliest"

REPEATABLE = frozenset({"topic", "kind", "key", "partition", "where", "offset"})
SINGLE = frozenset({"from", "since", "last_event_id", "canary"})
MAX_VALUES = 100
MAX_VALUE_CHARS = 1000


@dataclass(frozen=True)
class StreamRequest:
    topics: tuple[str, ...]
    event_filter: EventFilter
    start: str = START_LATEST
    since_ms: int | None = None
    offsets: dict[tuple[str, int], int] = field(default_factory=dict)
    resume_token: str | None = None
    resume_positions: dict[tuple[str, int], int] | None = None  # decoded from resume_token
    show_canary: bool = False


def _int(name: str, text: str) -> int:
    if not text.isdigit() or len(text) > 19:
        raise StreamRequestError(f"{name} must be a non-negative integer, got {text!r}")
    return int(text)


def _check_shape(query: QueryDict) -> None:
    unknown = sorted(set(query) - REPEATABLE - SINGLE)
    if unknown:
        allowed = ", ".join(sorted(REPEATABLE | SINGLE))
        raise StreamRequestError(f"unknown parameter {unknown[0]!r}; allowed: {allowed}")
    for name in query:
        values = query.getlist(name)
        if name in SINGLE and len(values) > 1:
            raise StreamRequestError(f"{name} may be given once")
        if len(values) > MAX_VALUES or any(len(value) > MAX_VALUE_CHARS for value in values):
            raise StreamRequestError(f"{name} has too many or too long values")
        if any(value == "" for value in values):
            raise StreamRequestError(f"{name} must not be empty")


def _topics(query: QueryDict, served: tuple[str, ...]) -> tuple[str, ...]:
    wanted = query.getlist("topic")
    for topic in wanted:
        if topic not in served:
            raise StreamRequestError(f"unknown topic {topic!r}; this service serves: {', '.join(served)}")
    return tuple(dict.fromkeys(wanted)) or served


def _field_match(text: str) -> FieldMatch:
    path, colon, expected = text.partition(":")
    segments = tuple(path.split("."))
    if not colon or not path or not all(segments):
        raise StreamRequestError(f"where must look like path.to.field:value, got {text!r}")
    return FieldMatch(path=segments, expected=expected)


def _event_filter(query: QueryDict) -> EventFilter:
    return EventFilter(
        kinds=frozenset(query.getlist("kind")),
        keys=frozenset(query.getlist("key")),
        partitions=frozenset(_int("partition", p) for p in query.getlist("partition")),
        fields=tuple(_field_match(text) for text in query.getlist("where")),
    )


def since_parse(text: str) -> int:
    """Epoch milliseconds from `1732600000000` or `2026-11-26T10:00:00Z`."""
    if text.isdigit():
        return _int("since", text)
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace(" ", "+"))
    except ValueError:
        raise StreamRequestError(
            f"since must be ISO-8601 (e.g. 2026-11-26T10:00:00Z) or epoch milliseconds, got {text!r}"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)  # a time without offset is read as UTC
    return int(moment.timestamp() * 1000)


def _offsets(query: QueryDict, topics: tuple[str, ...]) -> dict[tuple[str, int], int]:
    offsets: dict[tuple[str, int], int] = {}
    for text in query.getlist("offset"):
        topic, slash, rest = text.rpartition("/") if "/" in text else ("", "", text)
        if not slash and len(topics) > 1:
            raise StreamRequestError(f"offset {text!r} must name its topic: TOPIC/PARTITION:OFFSET")
        topic = topic if slash else topics[0]
        if topic not in topics:
            raise StreamRequestError(f"offset {text!r} names a topic outside this stream")
        partition, colon, offset = rest.partition(":")
        if not colon:
            raise StreamRequestError(f"offset must look like PARTITION:OFFSET, got {text!r}")
        offsets[(topic, _int("offset partition", partition))] = _int("offset", offset)
    return offsets


def stream_request_parse(
    query: QueryDict, *, last_event_id: str | None, served: tuple[str, ...]
) -> StreamRequest:
    _check_shape(query)
    topics = _topics(query, served)
    start = query.get("from", START_LATEST)
    if start not in (START_LATEST, START_EARLIEST):
        raise StreamRequestError(f"from must be 'latest' or 'earliest', got {start!r}")
    if "from" in query and "since" in query:
        raise StreamRequestError("give either from or since, not both")
    since = query.get("since")
    canary = query.get("canary", "0")
    if canary not in ("0", "1"):
        raise StreamRequestError(f"canary must be 0 or 1, got {canary!r}")
    token = last_event_id or query.get("last_event_id") or None
    return StreamRequest(
        topics=topics,
        event_filter=_event_filter(query),
        start=start,
        since_ms=since_parse(since) if since is not None else None,
        offsets=_offsets(query, topics),
        resume_token=token,
        resume_positions=_token_positions(token, topics),
        show_canary=canary == "1",
    )


def _token_positions(token: str | None, topics: tuple[str, ...]) -> dict[tuple[str, int], int] | None:
    if token is None:
        return None
    try:
        return token_decode(token, topics)
    except ResumeTokenError as error:
        raise StreamRequestError(str(error)) from None
