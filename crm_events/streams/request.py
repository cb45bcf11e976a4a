"""Parsing a `/crm-events` request into a `StreamRequest`, or a 400 with a clear reason.

Parameters (all optional):
  topic=NAME          repeatable; a subset of the served topics (default: all)
  kind=TYPE           repeatable; event `type` equal to TYPE or starting with `TYPE.`
  key=KEY             repeatable; a record key that is this text (its UTF-8 bytes)
  key_base64=DATA     repeatable; a record key that is these bytes (standard or URL-safe base64)
  partition=N         repeatable
  where=PATH:VALUE    repeatable, AND-ed; e.g. where=deal.stage:won
  from=latest|earliest  where to start (default latest)
  since=TIME          ISO-8601 (with offset or Z) or epoch milliseconds
  offset=[TOPIC/]P:O  repeatable; start partition P at offset O (others follow from=)
  last_event_id=TOKEN resume; the Last-Event-ID header wins over it (and over from/since)
  canary=1            also show the service's synthetic canary events (hidden by default)
Unknown parameters are rejected rather than ignored, so a typo never widens a stream.
Integers are ASCII digits within Kafka's own bounds (partition < 2^31, offset < 2^63) and
`since` lies in [0, 2^63) ms; anything else is a `StreamRequestError` (400) naming the
parameter. `served` is never empty: `stream_admit` refuses credentials that read no topic.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from django.http import QueryDict

from crm_events.core.filter_query import (
    ASCII_INTEGER,
    FILTER_PARAMETERS,
    MAX_VALUE_CHARS,
    MAX_VALUES,
    FilterValueError,
    digits_too_long,
    event_filter_parse,
    integer_parse,
)

# The filter values' messages and bounds live with their parser, and are named here as before.
from crm_events.core.filter_query import INTEGER_INVALID as INTEGER_INVALID
from crm_events.core.filter_query import KEY_BASE64_INVALID as KEY_BASE64_INVALID
from crm_events.core.filter_query import PARTITION_MAX as PARTITION_MAX
from crm_events.core.filter_query import WHERE_INVALID as WHERE_INVALID
from crm_events.core.filters import EventFilter
from crm_events.core.log_tokens import resume_id_decode
from crm_events.core.position_log import Amended, Between, LogPoint
from crm_events.core.positions import MAX_OFFSET
from crm_events.core.tokens import MAX_TOKEN_CHARS, ResumeTokenError
from crm_events.exceptions import StreamRequestError

START_LATEST = "latest"
START_EARLIEST = "earliest"

REPEATABLE = frozenset({"topic", "kind", "key", "key_base64", "partition", "where", "offset"})
SINGLE = frozenset({"from", "since", "last_event_id", "canary"})
# Kafka's own bounds: offsets and timestamps are int64 (ms since 1970); partitions int32 (filter_query).
SINCE_MAX_MS = 2**63 - 1
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

PARAMETER_UNKNOWN = "unknown parameter {name!r}; allowed: {allowed}"
PARAMETER_REPEATED = "{name} may be given once"
PARAMETER_TOO_LONG = "{name} has too many or too long values"
PARAMETER_EMPTY = "{name} must not be empty"
TOPIC_UNKNOWN = "unknown topic {topic!r}; this service serves: {served}"
SINCE_INVALID = "since must be ISO-8601 (e.g. 2026-11-26T10:00:00Z) or epoch milliseconds, got {text!r}"
SINCE_OUT_OF_RANGE = (
    "since must be from 1970-01-01T00:00:00Z (epoch milliseconds 0) to epoch milliseconds {maximum}, "
    "got {text!r}"
)
OFFSET_TOPIC_MISSING = "offset {text!r} must name its topic: TOPIC/PARTITION:OFFSET"
OFFSET_TOPIC_OUTSIDE = "offset {text!r} names a topic outside this stream"
OFFSET_INVALID = "offset must look like PARTITION:OFFSET, got {text!r}"
START_INVALID = "from must be 'latest' or 'earliest', got {text!r}"
FROM_AND_SINCE = "give either from or since, not both"
CANARY_INVALID = "canary must be 0 or 1, got {text!r}"


@dataclass(frozen=True)
class StreamRequest:
    topics: tuple[str, ...]
    event_filter: EventFilter
    start: str = START_LATEST
    since_ms: int | None = None
    offsets: dict[tuple[str, int], int] = field(default_factory=dict)
    resume_token: str | None = None
    resume_positions: dict[tuple[str, int], int] | None = None  # decoded from a version 1 resume_token
    # Decoded from a version 2, 3 or 4 one: resolved through the positions log when positioning.
    resume_point: LogPoint | Between | Amended | None = None
    resume_source: str = "last_event_id"  # where the token came from: the parameter or `Last-Event-ID`
    show_canary: bool = False


def _int(text: str, *, name: str, maximum: int, parameter: str) -> int:
    """An integer in [0, maximum] written in ASCII digits; anything else is a 400 naming `parameter`."""
    try:
        return integer_parse(text, name=name, maximum=maximum, parameter=parameter)
    except FilterValueError as error:
        raise StreamRequestError(str(error), parameter=error.parameter) from None


def _check_shape(query: QueryDict) -> None:
    unknown = sorted(set(query) - REPEATABLE - SINGLE)
    if unknown:
        allowed = ", ".join(sorted(REPEATABLE | SINGLE))
        message = PARAMETER_UNKNOWN.format(name=unknown[0], allowed=allowed)
        raise StreamRequestError(message, parameter=unknown[0])
    for name in query:
        values = query.getlist(name)
        if name in SINGLE and len(values) > 1:
            raise StreamRequestError(PARAMETER_REPEATED.format(name=name), parameter=name)
        # A resume id is whatever the server issued: as long as the header may be.
        longest = MAX_TOKEN_CHARS if name == "last_event_id" else MAX_VALUE_CHARS
        if len(values) > MAX_VALUES or any(len(value) > longest for value in values):
            raise StreamRequestError(PARAMETER_TOO_LONG.format(name=name), parameter=name)
        if any(value == "" for value in values):
            raise StreamRequestError(PARAMETER_EMPTY.format(name=name), parameter=name)


def _topics(query: QueryDict, served: tuple[str, ...]) -> tuple[str, ...]:
    wanted = query.getlist("topic")
    for topic in wanted:
        if topic not in served:
            message = TOPIC_UNKNOWN.format(topic=topic, served=", ".join(served))
            raise StreamRequestError(message, parameter="topic")
    return tuple(dict.fromkeys(wanted)) or served


def _event_filter(query: QueryDict) -> EventFilter:
    try:
        return event_filter_parse({name: query.getlist(name) for name in FILTER_PARAMETERS})
    except FilterValueError as error:
        raise StreamRequestError(str(error), parameter=error.parameter) from None


def since_parse(text: str) -> int:
    """Epoch milliseconds from `1732600000000` or `2026-11-26T10:00:00Z`, within [0, 2^63).

    A time without an offset is read as UTC; a time before 1970 or past Kafka's int64 range is a 400.
    """
    if ASCII_INTEGER.fullmatch(text):
        ms = SINCE_MAX_MS + 1 if digits_too_long(text, SINCE_MAX_MS) else int(text)
    else:
        ms = _iso_ms(text)
    if not 0 <= ms <= SINCE_MAX_MS:
        message = SINCE_OUT_OF_RANGE.format(maximum=SINCE_MAX_MS, text=text)
        raise StreamRequestError(message, parameter="since")
    return ms


def _iso_ms(text: str) -> int:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace(" ", "+"))
    except ValueError:
        raise StreamRequestError(SINCE_INVALID.format(text=text), parameter="since") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - _EPOCH) // timedelta(milliseconds=1)  # exact: no float rounding


def _offsets(query: QueryDict, topics: tuple[str, ...]) -> dict[tuple[str, int], int]:
    offsets: dict[tuple[str, int], int] = {}
    for text in query.getlist("offset"):
        topic, slash, rest = text.rpartition("/") if "/" in text else ("", "", text)
        if not slash and len(topics) > 1:
            raise StreamRequestError(OFFSET_TOPIC_MISSING.format(text=text), parameter="offset")
        topic = topic if slash else topics[0]
        if topic not in topics:
            raise StreamRequestError(OFFSET_TOPIC_OUTSIDE.format(text=text), parameter="offset")
        partition, colon, offset = rest.partition(":")
        if not colon:
            raise StreamRequestError(OFFSET_INVALID.format(text=text), parameter="offset")
        number = _int(partition, name="offset partition", maximum=PARTITION_MAX, parameter="offset")
        offsets[(topic, number)] = _int(offset, name="offset", maximum=MAX_OFFSET, parameter="offset")
    return offsets


def stream_request_parse(
    query: QueryDict, *, last_event_id: str | None, served: tuple[str, ...], log_topic: str = ""
) -> StreamRequest:
    """The request's parameters; `log_topic` is the positions log that version 2 ids name."""
    _check_shape(query)
    topics = _topics(query, served)
    start = query.get("from", START_LATEST)
    if start not in (START_LATEST, START_EARLIEST):
        raise StreamRequestError(START_INVALID.format(text=start), parameter="from")
    if "from" in query and "since" in query:
        raise StreamRequestError(FROM_AND_SINCE, parameter="since")
    since = query.get("since")
    canary = query.get("canary", "0")
    if canary not in ("0", "1"):
        raise StreamRequestError(CANARY_INVALID.format(text=canary), parameter="canary")
    token = last_event_id or query.get("last_event_id") or None
    token_source = "Last-Event-ID" if last_event_id else "last_event_id"
    resume = _resume_decode(token, topics, source=token_source, log_topic=log_topic)
    return StreamRequest(
        topics=topics,
        event_filter=_event_filter(query),
        start=start,
        since_ms=since_parse(since) if since is not None else None,
        offsets=_offsets(query, topics),
        resume_token=token,
        resume_positions=resume if isinstance(resume, dict) else None,
        resume_point=resume if isinstance(resume, LogPoint | Between | Amended) else None,
        resume_source=token_source,
        show_canary=canary == "1",
    )


def _resume_decode(
    token: str | None, topics: tuple[str, ...], *, source: str, log_topic: str
) -> dict[tuple[str, int], int] | LogPoint | Between | Amended | None:
    if token is None:
        return None
    try:
        return resume_id_decode(token, topics, log_topic=log_topic)
    except ResumeTokenError as error:
        raise StreamRequestError(str(error), parameter=source) from None
