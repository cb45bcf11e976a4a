"""Ending the open streams of users whose access changed, in every web process.

One access message (core/messages.py) goes to the broadcast group per change, naming the
users (`user:NAME`) or hashed sessions concerned; each web process's hub ends their streams
with a `reconnect` frame whose reason says why (`grants_changed`, `logged_out`). It is sent
once the change is committed, so a client that reconnects at once already reads the new grant.

Sending is best effort: when the channel layer cannot be reached the change still applies
to every new connect, and the failure is logged as an error, but open streams go on until
they end for another reason (their session's expiry at the latest).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Iterable

from channels.layers import get_channel_layer
from django.db import transaction
from redis.exceptions import RedisError

from crm_events.core import messages as broadcast

logger = logging.getLogger(__name__)


def session_tag(session_key: str | None) -> str | None:
    """A session key as access messages and streams name it: hashed, as the key is a credential."""
    return hashlib.sha256(session_key.encode()).hexdigest()[:32] if session_key else None


def access_revoke_on_commit(
    *, subjects: Iterable[str] = (), sessions: Iterable[str] = (), reason: str
) -> None:
    """End these users' or sessions' open streams once the current transaction commits."""
    subjects, sessions = sorted(set(subjects)), sorted(set(sessions))
    if subjects or sessions:
        transaction.on_commit(lambda: access_revoke(subjects=subjects, sessions=sessions, reason=reason))


def access_revoke(*, subjects: list[str], sessions: list[str], reason: str) -> None:
    """Send the access messages now, from sync code (an admin view, a signal, a command)."""
    size = broadcast.ACCESS_NAMES_MAX
    parts: list[tuple[list[str], list[str]]] = [
        (subjects[i:i + size], []) for i in range(0, len(subjects), size)
    ]
    parts += [([], sessions[i:i + size]) for i in range(0, len(sessions), size)]
    messages = [broadcast.access_message(subjects=s, sessions=k, reason=reason) for s, k in parts]
    try:
        asyncio.run(_send(messages))
    except (RedisError, OSError) as error:
        logger.error("could not end the open streams of %s (%s): %s; they end at their session's expiry",
                     ", ".join(subjects) or "a session", reason, error)
        return
    logger.info("asked every web process to end the streams of %s (%s)",
                ", ".join(subjects) or "a session", reason)


async def _send(messages: list[dict[str, object]]) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    for message in messages:
        await layer.group_send(broadcast.BROADCAST_GROUP, message)
