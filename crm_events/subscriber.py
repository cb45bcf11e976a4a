"""One SSE client's side of the in-process fan-out: a bounded queue of frame bytes.

The hub offers each client the frame bytes it built once for all; the client's
response loop takes everything queued in one go and writes it as one body chunk,
so a client that fell a little behind catches up in few writes instead of many.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from crm_events.fanout import LiveEvent

EventPredicate = Callable[["LiveEvent"], bool]

CLOSE_SLOW = "slow"
CLOSE_SHUTDOWN = "shutdown"


def _accept_all(_event: LiveEvent) -> bool:
    return True


class StreamSubscriber:
    """A client's bounded frame buffer, filled by the hub, drained by its response."""

    def __init__(self, *, max_frames: int, accepts: EventPredicate = _accept_all) -> None:
        self.max_frames = max_frames
        self.accepts = accepts
        self.close_reason: str | None = None
        self._frames: deque[bytes] = deque()
        self._wakeup = asyncio.Event()

    def offer(self, event: LiveEvent) -> None:
        """Queue the event's frame if the client wants it; called by the hub, never blocks."""
        if self.close_reason is not None or not self.accepts(event):
            return
        if len(self._frames) >= self.max_frames:
            # Holding more would let one slow client grow the server without bound.
            self.close(CLOSE_SLOW)
            return
        self._frames.append(event.frame)
        self._wakeup.set()

    def close(self, reason: str) -> None:
        if self.close_reason is None:
            self.close_reason = reason
        self._wakeup.set()

    async def take(self, timeout: float) -> bytes:
        """Wait up to `timeout` for frames; return all queued frames as one chunk (maybe b"")."""
        if not self._frames and self.close_reason is None:
            try:
                # asyncio.timeout, unlike wait_for, starts no task: this runs per wakeup.
                async with asyncio.timeout(timeout):
                    await self._wakeup.wait()
            except TimeoutError:
                pass
        self._wakeup.clear()
        chunk = b"".join(self._frames)
        self._frames.clear()
        return chunk
