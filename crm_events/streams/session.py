"""One client's stream, from first byte to farewell, as a sequence of body chunks.

  1. `retry:` hint (with jitter, so a fleet of clients does not reconnect in step)
     and the `connected` frame, whose id is already a valid resume point;
  2. `gap` frames, if the start position is older than what Kafka retains, or if a
     resume id's position is one Kafka's log no longer has (`reset`);
  3. replayed frames from Kafka, until the client has caught up with the hub;
  4. live frames from the hub, a heartbeat (with a fresh id) when idle;
  5. a `reconnect` frame with the resume id when the server ends the stream
     (slow client, lifetime reached, shutdown), so the client resumes elsewhere.
Chunks are written only while the connection's unsent bytes stay under a limit.
Under Daphne every chunk is written straight into the connection (`body_write`)
rather than yielded, and once live the hub writes events itself (see subscriber.py);
elsewhere (tests, other servers) the chunks are yielded as the response body.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import AsyncIterator, Callable

from crm_events.config import KafkaConfig, StreamConfig
from crm_events.core.frames import comment_encode, frame_encode, retry_encode
from crm_events.core.positions import positions_text
from crm_events.exceptions import KafkaUnavailable
from crm_events.fanout.hub import EventHub
from crm_events.fanout.subscriber import CLOSE_LIFETIME, CLOSE_RESYNC, CLOSE_SLOW, StreamSubscriber
from crm_events.streams.catch_up import replay_until_live
from crm_events.streams.positioning import Gap, Reset

logger = logging.getLogger(__name__)

KIND_CONNECTED = "connected"
KIND_GAP = "gap"
KIND_RECONNECT = "reconnect"
EVENT_GAP = "gap"
REASON_RETENTION = "retention"
REASON_RESET = "reset"
REASON_UNAVAILABLE = "unavailable"
WRITE_POLL_SECONDS = 0.05


def _json(payload: dict) -> str:
    return json.dumps(payload, separators=(",", ":"))


def connected_frame(config: KafkaConfig, topics: tuple[str, ...], token: str) -> bytes:
    payload = {"kind": KIND_CONNECTED, "topic": topics[0], "topics": list(topics), "group": config.group}
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


def _gap_frames(payload: dict, token: str) -> bytes:
    data = _json(payload)
    return frame_encode(data, event=EVENT_GAP) + frame_encode(data, event_id=token)


def reconnect_frame(reason: str, token: str) -> bytes:
    return frame_encode(_json({"kind": KIND_RECONNECT, "reason": reason}), event_id=token)


async def unavailable_body(reason: str, token: str | None, config: StreamConfig) -> AsyncIterator[bytes]:
    """A stream that cannot start yet: a retry hint and a `reconnect` frame, keeping the id."""
    payload = {"kind": KIND_RECONNECT, "reason": REASON_UNAVAILABLE, "detail": reason}
    yield retry_encode(config.retry_ms) + frame_encode(_json(payload), event_id=token)


def heartbeat_frame(token: str) -> bytes:
    """A comment plus an `id:` with no data: clients update their resume id, fire no event."""
    return comment_encode("heartbeat")[:-1] + f"id: {token}\n\n".encode("ascii")


class StreamSession:
    def __init__(
        self,
        *,
        hub: EventHub,
        subscriber: StreamSubscriber,
        kafka: KafkaConfig,
        config: StreamConfig,
        gaps: list[Gap],
        write_buffer: Callable[[], int] | None,
        resets: list[Reset] | None = None,
        body_write: Callable[[bytes], None] | None = None,
    ) -> None:
        self.hub = hub
        self.subscriber = subscriber
        self.kafka = kafka
        self.config = config
        self.gaps = gaps
        self.resets = resets or []
        self.write_buffer = write_buffer
        self.body_write = body_write
        self.started = time.monotonic()

    def _retry_ms(self) -> int:
        return int(self.config.retry_ms * random.uniform(0.8, 1.2))

    async def body(self) -> AsyncIterator[bytes]:
        """The response body: every chunk yielded, or written directly when the server can."""
        async for chunk in self._chunks():
            if self.body_write is None:
                yield chunk
            else:
                self.body_write(chunk)

    async def _chunks(self) -> AsyncIterator[bytes]:
        subscriber, hub = self.subscriber, self.hub
        hub.attach(subscriber)
        logger.info("stream started at %s", positions_text(subscriber.positions))
        try:
            token = subscriber.token()
            yield retry_encode(self._retry_ms()) + connected_frame(self.kafka, subscriber.topics, token)
            if self.gaps:
                yield gap_frames(self.gaps, token)
            if self.resets:
                yield reset_frames(self.resets, token)
            async for chunk in self._replay():
                yield chunk
            async for chunk in self._live():
                yield chunk
            if subscriber.close_reason == CLOSE_SLOW:
                subscriber.drop_queued()
            while leftover := await subscriber.take(timeout=0, max_bytes=self.config.write_buffer_bytes):
                yield leftover
                if not await self._wait_writable():
                    subscriber.drop_queued()
            yield reconnect_frame(subscriber.close_reason, subscriber.token())
        finally:
            hub.unsubscribe(subscriber)
            reason = subscriber.close_reason or "client left"
            logger.info("stream ended (%s) at %s", reason, positions_text(subscriber.positions))

    async def _replay(self) -> AsyncIterator[bytes]:
        try:
            replay = replay_until_live(
                self.hub, self.subscriber, self.kafka,
                is_cancelled=lambda: self.subscriber.close_reason is not None,
            )
            async for chunk in replay:
                await self._wait_writable()
                yield chunk
        except KafkaUnavailable as error:
            logger.warning("replay failed: %s", error)
            self.subscriber.close(CLOSE_RESYNC)

    async def _live(self) -> AsyncIterator[bytes]:
        subscriber = self.subscriber
        if self.body_write is not None:
            subscriber.direct_writes_start(self.body_write, self._has_room, self.config.write_buffer_bytes)
        while subscriber.close_reason is None:
            remaining = self._lifetime_left()
            if remaining <= 0:
                subscriber.close(CLOSE_LIFETIME)
                break
            writes = subscriber.direct_writes
            chunk = await subscriber.take(
                timeout=min(self.config.heartbeat_interval, remaining),
                max_bytes=self.config.write_buffer_bytes,
            )
            if chunk:
                yield chunk
            elif subscriber.close_reason is None and subscriber.direct_writes == writes:
                yield heartbeat_frame(subscriber.token())  # idle: nothing written meanwhile
            await self._wait_writable()

    def _lifetime_left(self) -> float:
        if self.config.max_lifetime <= 0:
            return float("inf")
        return self.config.max_lifetime - (time.monotonic() - self.started)

    def _has_room(self) -> bool:
        return self.write_buffer is None or self.write_buffer() <= self.config.write_buffer_bytes

    async def _wait_writable(self) -> bool:
        """Wait while the client has too much unsent. False if it made no progress for the
        stall timeout: it is then closed as slow (unless already closing for another reason)."""
        if self.write_buffer is None:
            return True
        stalled_since = time.monotonic()
        while self.write_buffer() > self.config.write_buffer_bytes:
            if self.subscriber.close_reason == CLOSE_SLOW:
                return False  # its queue overflowed meanwhile: no need to wait any longer
            if time.monotonic() - stalled_since > self.config.stall_timeout:
                self.subscriber.close(CLOSE_SLOW)
                return False
            await asyncio.sleep(WRITE_POLL_SECONDS)
        return True
