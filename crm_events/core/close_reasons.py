"""Why the server ends a stream: the `reason` of its last frame, `reconnect`.

A closed set (metric labels, the AsyncAPI document's enum, the audit line's `reason`), so one
`StrEnum`: its members are the very strings the frames and labels carry.
"""

from __future__ import annotations

from enum import StrEnum


class CloseReason(StrEnum):
    SLOW = "slow"  # the client fell too far behind, or made no progress
    SHUTDOWN = "shutdown"  # the web process is stopping
    RESYNC = "resync"  # Kafka failed during a replay, or the topic's partitions changed
    LIFETIME = "lifetime"  # SSE_MAX_LIFETIME reached
    AUTH_EXPIRED = "auth_expired"  # the token's exp plus the leeway
    SESSION_EXPIRED = "session_expired"  # the session row's expiry
    GRANTS_CHANGED = "grants_changed"  # the user's access changed (an access message)
    LOGGED_OUT = "logged_out"  # the session that opened the stream logged out (an access message)
