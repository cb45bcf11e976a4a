"""One SSE client's side of the fan-out: its positions, its filter, a bounded frame queue.

`positions` is where the client stands in every partition of its topics: the
offset after the last event it was given or filtered out. It is what its resume
id encodes, and what de-duplicates live events against a replay at the seam.
While a client's positions equal the hub's (`in_sync`, the normal case), it takes
the frame the hub built once for all; only a client still catching up gets frames
built for it alone.

Queued frames leave as one body chunk, so a client that fell a little behind
catches up in few writes. Under Daphne a live client is written to directly: after
each batch the hub calls `flush()`, which writes the client's queued frames into
its connection at once when the connection has room; only a client without room
wakes its own task, which waits for the socket or sends the client away as slow.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

from crm_events import metrics
from crm_events.core.filters import EventFilter
from crm_events.core.positions import Position
from crm_events.core.tokens import token_encode

if TYPE_CHECKING:
    from crm_events.fanout.hub import EventHub, LiveEvent

CLOSE_SLOW = "slow"
CLOSE_SHUTDOWN = "shutdown"
CLOSE_RESYNC = "resync"
CLOSE_LIFETIME = "lifetime"


class StreamSubscriber:
    """A client's place in the stream and its bounded frame buffer."""

    def __init__(
        self,
        *,
        topics: tuple[str, ...],
        positions: dict[Position, int],
        event_filter: EventFilter,
        max_frames: int,
    ) -> None:
        self.topics = tuple(sorted(topics))
        self.positions = positions
        self.event_filter = event_filter
        self.max_frames = max_frames
        self.in_sync = False
        self.close_reason: str | None = None
        # Each queued frame with the event it carries, so unsent frames can be given back.
        self._queued: deque[tuple[bytes, Position, int]] = deque()
        self._wakeup = asyncio.Event()
        # Direct writes (see the module docstring); None until the stream is live under Daphne.
        self._write: Callable[[bytes], None] | None = None
        self._has_room: Callable[[], bool] = lambda: True
        self._chunk_bytes = 1 << 20
        self.direct_writes = 0

    def token(self) -> str:
        return token_encode(self.positions)

    def advance(self, event: LiveEvent) -> bool:
        """Move past `event` if it is new to this client; return whether it was new."""
        if event.topic not in self.topics:
            return False
        position = self.positions.get(event.position)
        if position is not None and event.offset < position:
            return False  # already given to this client by its replay
        self.positions[event.position] = event.offset + 1
        return True

    def offer(self, event: LiveEvent, hub: EventHub) -> None:
        """Take a live event; called by the hub for every event, never blocks."""
        if self.close_reason is not None or not self.advance(event):
            return
        if self.event_filter.matches(event.payload):
            if len(self._queued) >= self.max_frames:
                # Holding more would let one slow client grow the server without bound;
                # it resumes from Kafka instead. The event is not consumed: step back.
                self.positions[event.position] = event.offset
                self.close(CLOSE_SLOW)
                return
            frame = hub.shared_frame(event, self.topics) if self.in_sync else event.frame(self.token())
            self._queued.append((frame, event.position, event.offset))
            if self._write is None:
                self._wakeup.set()
        if not self.in_sync:
            self.in_sync = hub.in_sync(self)

    def direct_writes_start(
        self, write: Callable[[bytes], None], has_room: Callable[[], bool], chunk_bytes: int
    ) -> None:
        """From now on `flush()` writes this client's frames with `write` while `has_room()`."""
        self._write, self._has_room, self._chunk_bytes = write, has_room, chunk_bytes

    def flush(self) -> int:
        """Write the queued frames into the connection now, if it has room; return how many.

        Called by the hub after each batch. Without room, the stream's task takes over (it
        waits for the socket, or sends the client away as slow), so nothing here blocks.
        """
        if not self._queued or self._write is None or self.close_reason is not None:
            return 0
        written = 0
        if self._has_room():
            written = len(self._queued)
            self._write(self._chunk_pop(self._chunk_bytes))
            written -= len(self._queued)
            self.direct_writes += 1
        if self._queued:
            self._wakeup.set()
        return written

    def close(self, reason: str) -> None:
        """Stop taking events; the positions now say exactly what was queued."""
        if self.close_reason is None:
            self.close_reason = reason
        self._wakeup.set()

    def drop_queued(self) -> None:
        """Forget the frames not yet written, moving back to the first of them in each
        partition: a client sent away as slow must not be fed a backlog on the way out,
        and its resume id must then cover only what it was actually sent."""
        for _frame, position, offset in self._queued:
            self.positions[position] = min(self.positions[position], offset)
        self._queued.clear()

    async def take(self, timeout: float, max_bytes: int = 1 << 20) -> bytes:
        """Wait up to `timeout` for frames; return the queued ones as one chunk (maybe b"").

        The chunk stops once it holds `max_bytes` (but has at least one frame), so a
        backlog reaches the connection's write buffer in steps the writer can check.
        """
        if not self._queued and self.close_reason is None:
            try:
                # asyncio.timeout, unlike wait_for, starts no task: this runs per wakeup.
                async with asyncio.timeout(timeout):
                    await self._wakeup.wait()
            except TimeoutError:
                pass
        queued = len(self._queued)
        chunk = self._chunk_pop(max_bytes)
        if queued > len(self._queued):
            metrics.events_delivered(queued - len(self._queued))
        if not self._queued:
            self._wakeup.clear()
        return chunk

    def _chunk_pop(self, max_bytes: int) -> bytes:
        """The queued frames as one chunk of at most `max_bytes` (but at least one frame)."""
        frames, size = [], 0
        while self._queued and (not frames or size + len(self._queued[0][0]) <= max_bytes):
            frame = self._queued.popleft()[0]
            frames.append(frame)
            size += len(frame)
        return b"".join(frames)
