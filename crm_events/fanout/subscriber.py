"""One SSE client's side of the fan-out: its positions, its filter, a bounded frame queue.

`positions` is where the client stands in every partition of its topics: the
offset after the last event it was given or filtered out. It is what its resume
id encodes, and what de-duplicates live events against a replay at the seam.
Once a client's positions equal the hub's (`in_sync`, the normal case), it keeps
none of its own: every event the hub passes on from then is either given to it or
filtered out, so its positions ARE the hub's, read when its id is needed (a
heartbeat, a farewell). So the hub does no work at all for an in-sync client an
event does not match (see matching.py), and a client it does match takes the frame
the hub built once for all. Only a client still catching up, or ahead of the hub,
keeps positions of its own and gets frames built for it alone.

Queued frames leave as one body chunk, so a client that fell a little behind
catches up in few writes. A live client is written to by the hub itself: after
each batch the hub calls `flush()`, which writes the client's queued frames into
its transport at once when the connection has room; only a client without room
wakes its own task (the session), which waits for room or sends the client away
as slow.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

from crm_events.core.close_reasons import CloseReason
from crm_events.core.filters import EventFilter, PayloadFilter
from crm_events.core.flag import Flag
from crm_events.core.live_event import LiveEvent
from crm_events.core.positions import Position
from crm_events.core.tokens import token_encode
from crm_events.core.transport import StreamTransport


class SharedFrames(Protocol):
    """What a subscriber asks of the hub that offers it events."""

    def shared_frame(self, event: LiveEvent, topics: tuple[str, ...]) -> bytes: ...
    def positions_for(self, topics: tuple[str, ...]) -> dict[Position, int]: ...
    def resume_token(self, topics: tuple[str, ...]) -> str: ...


class StreamSubscriber:
    """A client's place in the stream and its bounded frame buffer."""

    def __init__(
        self,
        *,
        topics: tuple[str, ...],
        positions: dict[Position, int],
        event_filter: PayloadFilter | EventFilter,
        max_frames: int,
        transport: StreamTransport,
        chunk_bytes: int = 1 << 20,
    ) -> None:
        self.topics = tuple(sorted(topics))
        self._positions: dict[Position, int] = positions
        self._live: SharedFrames | None = None  # while in sync: the hub whose positions are ours
        # A short id of `_positions` (the hub's when leaving it, or a log point the catch-up
        # reached), while they stay as they were.
        self._own_token: str | None = None
        self.event_filter = event_filter
        self.max_frames = max_frames
        self.transport = transport
        self.chunk_bytes = chunk_bytes
        self.close_reason: str | None = None
        self.writes = 0  # chunks written: tells the session whether it was idle
        self.delivered = 0  # events written or replayed to it, for its audit line
        # Each queued frame with the event it carries, so unsent frames can be given back. A list,
        # not a deque: an empty deque allocates a block up front, an empty list nothing.
        self._queued: list[tuple[bytes, Position, int]] = []
        self._wakeup = Flag()

    @property
    def positions(self) -> dict[Position, int]:
        """Where the client stands: its own, or the hub's while it is in sync with it."""
        return self._live.positions_for(self.topics) if self._live is not None else self._positions

    @property
    def in_sync(self) -> bool:
        return self._live is not None

    def sync_to(self, hub: SharedFrames) -> None:
        """From now on the client's positions are the hub's (it called this when they were equal)."""
        self._live = hub
        self._positions = {}  # its own are the hub's until it detaches: not kept meanwhile

    def _detach(self) -> None:
        """Keep the hub's positions as the client's own from here on (closing, say)."""
        if self._live is not None:
            self._own_token = self._live.resume_token(self.topics)
            self._positions, self._live = dict(self._live.positions_for(self.topics)), None

    def _position_set(self, position: Position, offset: int) -> None:
        self._positions[position] = offset
        self._own_token = None  # no longer the positions the short id named

    def position_raise(self, position: Position, offset: int) -> None:
        """Move a position of a client not in sync forward to `offset` (never back)."""
        if offset > self._positions.get(position, -1):
            self._position_set(position, offset)

    def token_known(self, token: str) -> None:
        """`token` is a short id of the client's positions as they are now (a catch-up's point)."""
        self._own_token = token

    def token(self) -> str:
        if self._live is not None:
            return self._live.resume_token(self.topics)
        return self._own_token or token_encode(self._positions)

    @property
    def queued(self) -> int:
        return len(self._queued)

    def queued_frames(self) -> list[bytes]:
        """The frames waiting for the stream's task, in order (the hub's shared bytes objects)."""
        return [frame for frame, _position, _offset in self._queued]

    @property
    def woken(self) -> bool:
        """Whether the stream's task was woken to write what the hub could not."""
        return self._wakeup.is_set()

    def advance(self, event: LiveEvent) -> bool:
        """Move past `event` if it is new to this client; return whether it was new."""
        if event.topic not in self.topics:
            return False
        position = self._positions.get(event.position)
        if position is not None and event.offset < position:
            return False  # already given to this client by its replay
        self._position_set(event.position, event.offset + 1)
        return True

    def take(self, frame: bytes, event: LiveEvent) -> bool:
        """An event the hub found this in-sync client's filter matches, as the shared frame;
        True if it is queued. Never blocks."""
        if self.close_reason is not None:
            return False
        if len(self._queued) >= self.max_frames:
            # Holding more would let one slow client grow the server without bound; it
            # resumes from Kafka instead. The event is not consumed: its id stops before it.
            self._detach()
            self._position_set(event.position, event.offset)
            self.close(CloseReason.SLOW)
            return False
        self._queued.append((frame, event.position, event.offset))
        return True

    def offer(self, event: LiveEvent, hub: SharedFrames) -> bool:
        """A live event for a client not yet in sync (caught up to, or past, the hub's
        position): checked and framed for it alone. True if a frame is queued."""
        if self.close_reason is not None or not self.advance(event):
            return False
        if not self.event_filter.matches(event.payload):
            return False
        if len(self._queued) >= self.max_frames:
            self._position_set(event.position, event.offset)
            self.close(CloseReason.SLOW)
            return False
        self._queued.append((event.frame(self.token()), event.position, event.offset))
        return True

    def flush(self) -> int:
        """Write queued frames into the transport now, if it has room; return how many.

        Called by the hub after each batch, and by the session once there is room again.
        Whatever cannot go now wakes the session (it waits for room, or sends the client
        away as slow), so nothing here blocks. A closing stream's frames are the session's.
        """
        if self.close_reason is not None:
            return 0
        return self.write_queued()

    def write_queued(self) -> int:
        """Write what is queued if the transport has room (also when closing); return how many."""
        if not self._queued:
            return 0
        written = 0
        if self.transport.has_room():
            written = len(self._queued)
            self.transport.write(self._chunk_pop())
            written -= len(self._queued)
            self.writes += 1
            self.delivered += written
        if self._queued:
            self._wakeup.set()
        return written

    def write(self, chunk: bytes) -> None:
        """A chunk of the session's own (a heartbeat, a farewell), after what is queued."""
        self.transport.write(chunk)
        self.writes += 1

    async def wait(self, timeout: float) -> None:
        """Until the hub needs the session (frames it could not write, or closing), or `timeout`."""
        if not self._queued and self.close_reason is None:
            try:
                # asyncio.timeout, unlike wait_for, starts no task: this runs per wakeup.
                async with asyncio.timeout(timeout):
                    await self._wakeup.wait()
            except TimeoutError:
                pass
        self._wakeup.clear()

    def close(self, reason: str) -> None:
        """Stop taking events; the positions now say exactly what was queued."""
        if self.close_reason is None:
            self._detach()
            self.close_reason = reason
        self._wakeup.set()

    def drop_queued(self) -> None:
        """Forget the frames not yet written, moving back to the first of them in each
        partition: a client sent away as slow must not be fed a backlog on the way out,
        and its resume id must then cover only what it was actually sent."""
        self._detach()
        for _frame, position, offset in self._queued:
            self._position_set(position, min(self._positions[position], offset))
        self._queued.clear()

    def _chunk_pop(self) -> bytes:
        """The queued frames as one chunk of at most `chunk_bytes` (but at least one frame)."""
        frames: list[bytes] = []
        size = 0
        for frame, _position, _offset in self._queued:
            if frames and size + len(frame) > self.chunk_bytes:
                break
            frames.append(frame)
            size += len(frame)
        del self._queued[: len(frames)]
        return b"".join(frames)
