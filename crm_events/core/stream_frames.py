"""The frames a stream sends of its own, besides events: hello, gaps, farewell, heartbeat.

Every one of them that carries an `id:` carries a valid resume id, so a client that
stores the last id it saw can always resume from where it really is.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from crm_events.core.frames import comment_encode, frame_encode, retry_encode


@dataclass(frozen=True, slots=True)
class Gap:
    """Offsets [first, last] of a partition that Kafka no longer retains."""

    topic: str
    partition: int
    first: int
    last: int


@dataclass(frozen=True, slots=True)
class Reset:
    """A token position Kafka's log no longer has: past the end (`end` and `restart` are the
    log's end and start), or in a partition that is gone (both None)."""

    topic: str
    partition: int
    requested: int
    end: int | None
    restart: int | None


KIND_CONNECTED = "connected"
KIND_GAP = "gap"
KIND_RECONNECT = "reconnect"
EVENT_GAP = "gap"
REASON_RETENTION = "retention"
REASON_RESET = "reset"
REASON_UNAVAILABLE = "unavailable"


def _json(payload: dict[str, Any]) -> str:
    return json.dumps(payload, separators=(",", ":"))


def connected_frame(*, group: str, topics: tuple[str, ...], token: str) -> bytes:
    payload = {"kind": KIND_CONNECTED, "topic": topics[0], "topics": list(topics), "group": group}
    return frame_encode(_json(payload), event_id=token)


def gap_frames(gaps: list[Gap], token: str) -> bytes:
    """A named `gap` event for new clients, and the same as a plain frame for old ones."""
    ranges = [
        {"topic": gap.topic, "partition": gap.partition, "first_offset": gap.first, "last_offset": gap.last}
        for gap in gaps
    ]
    return _gap_frames({"kind": KIND_GAP, "reason": REASON_RETENTION, "missing": ranges}, token)


def reset_frames(resets: list[Reset], token: str) -> bytes:
    """The same pair for positions past their log's end, or in partitions that are gone."""
    entries = [
        {"topic": reset.topic, "partition": reset.partition, "requested_offset": reset.requested,
         "end_offset": reset.end, "restart_offset": reset.restart}
        for reset in resets
    ]
    return _gap_frames({"kind": KIND_GAP, "reason": REASON_RESET, "reset": entries}, token)


def _gap_frames(payload: dict[str, Any], token: str) -> bytes:
    data = _json(payload)
    return frame_encode(data, event=EVENT_GAP) + frame_encode(data, event_id=token)


def reconnect_frame(reason: str, token: str) -> bytes:
    return frame_encode(_json({"kind": KIND_RECONNECT, "reason": reason}), event_id=token)


def unavailable_frames(reason: str, token: str | None, retry_ms: int) -> bytes:
    """A stream that cannot start yet: a retry hint and a `reconnect` frame, keeping the id."""
    payload = {"kind": KIND_RECONNECT, "reason": REASON_UNAVAILABLE, "detail": reason}
    return retry_encode(retry_ms) + frame_encode(_json(payload), event_id=token)


def heartbeat_frame(token: str) -> bytes:
    """A comment plus an `id:` with no data: clients update their resume id, fire no event."""
    return comment_encode("heartbeat")[:-1] + f"id: {token}\n\n".encode("ascii")
