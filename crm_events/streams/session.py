"""One client's stream, from first byte to farewell, written through its transport.

  1. `retry:` hint (with jitter, so a fleet of clients does not reconnect in step)
     and the `connected` frame, whose id is already a valid resume point;
  2. `gap` frames, if the start position is older than what Kafka retains, or if a
     resume id's position is one Kafka's log no longer has (`reset`);
  3. replayed frames from Kafka, until the client has caught up with the hub;
  4. live frames, written by the hub itself (see fanout/subscriber.py); the session
     only wakes to wait for room, to send a heartbeat (with a fresh id) when idle, or
     to close;
  5. a `reconnect` frame with the resume id when the server ends the stream
     (slow client, lifetime reached, shutdown; the credentials' expiry: `auth_expired`,
     `session_expired`; an access message: `grants_changed`, `logged_out`), so the client
     resumes elsewhere; what was queued for it under credentials no longer in force is
     dropped, and its resume id stops before it (nothing is lost: it is replayed if allowed);
  6. however it ended: its slot under the concurrency limits released, its end counted,
     its audit line written (streams/audit.py).
A client that leaves no room for `SSE_STALL_TIMEOUT` seconds is sent away as slow.
"""

from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass, field

from crm_events import metrics
from crm_events.access.auth import Principal
from crm_events.access.limits import StreamSlot
from crm_events.config import KafkaConfig, StreamConfig
from crm_events.core.close_reasons import CloseReason
from crm_events.core.frames import retry_encode
from crm_events.core.log_tokens import log_token_encode
from crm_events.core.messages import ACCESS_REASONS
from crm_events.core.position_log import LogPoint
from crm_events.core.positions import positions_text
from crm_events.core.stream_frames import (
    Gap,
    Reset,
    connected_frame,
    gap_frames,
    heartbeat_frame,
    reconnect_frame,
    reset_frames,
)
from crm_events.exceptions import KafkaUnavailable
from crm_events.fanout.hub import EventHub
from crm_events.fanout.subscriber import StreamSubscriber
from crm_events.streams.audit import StreamAudit
from crm_events.streams.catch_up import replay_until_live
from crm_events.streams.ordered_catch_up import short_token

logger = logging.getLogger(__name__)


@dataclass
class StreamSession:
    hub: EventHub
    subscriber: StreamSubscriber
    slot: StreamSlot
    kafka: KafkaConfig
    config: StreamConfig
    gaps: list[Gap] = field(default_factory=list)
    resets: list[Reset] = field(default_factory=list)
    point: LogPoint | None = None  # the log point it resumes from, when it can follow the log
    started: float = field(default_factory=time.monotonic)
    principal: Principal | None = None  # who streams: access messages and its expiry end it
    requested: float | None = None  # time.monotonic() when its request began (fanout/owners.py)
    audit: StreamAudit | None = None

    async def run(self) -> None:
        """The whole stream; returns when it ended (by the server, or the client leaving). Its
        slot under the limits is released and its end counted however it ends (a session that
        never ran releases its slot when it is collected: see access/limits.py)."""
        subscriber, hub = self.subscriber, self.hub
        hub.attach(subscriber)
        if self.principal is not None:
            principal = self.principal
            hub.owners.add(
                subscriber, subject=principal.subject, session=principal.session, since=self.requested
            )
        if self.audit is not None:
            self.audit.started()
        logger.info("stream started at %s", positions_text(subscriber.positions))
        try:
            await self._hello()
            await self._replay()
            await self._live()
            await self._farewell()
        finally:
            hub.unsubscribe(subscriber)
            hub.owners.discard(subscriber)
            subscriber.transport.close()
            self.slot.release()
            metrics.stream_closed(subscriber.close_reason or "client")
            reason = subscriber.close_reason or "client left"
            logger.info("stream ended (%s) at %s", reason, positions_text(subscriber.positions))
            if self.audit is not None:
                self.audit.ended(reason=subscriber.close_reason or "client", events=subscriber.delivered)

    async def _hello(self) -> None:
        subscriber, hub = self.subscriber, self.hub
        if self.point is not None:
            subscriber.token_known(log_token_encode(self.point, log_topic=self.kafka.positions_topic))
        if subscriber.positions == hub.positions_for(subscriber.topics):
            subscriber.token_known(hub.resume_token(subscriber.topics))
        token = await self._token()
        retry_ms = int(self.config.retry_ms * random.uniform(0.8, 1.2))
        hello = retry_encode(retry_ms) + connected_frame(
            group=self.kafka.group, topics=subscriber.topics, token=token
        )
        if self.gaps:
            hello += gap_frames(self.gaps, token)
        if self.resets:
            hello += reset_frames(self.resets, token)
        subscriber.write(hello)

    async def _replay(self) -> None:
        subscriber = self.subscriber
        try:
            replay = replay_until_live(
                self.hub, subscriber, self.kafka, point=self.point,
                # A catch-up ends when the credentials do too; the stream then ends as live ones do.
                is_cancelled=lambda: subscriber.close_reason is not None or self._lifetime_left() <= 0,
            )
            async for chunk in replay:
                # Written whatever the room: the replay already counts these as given. A client
                # that then leaves no room is closed as slow, which ends the replay.
                subscriber.write(chunk)
                await self._room()
        except KafkaUnavailable as error:
            logger.warning("replay failed: %s", error)
            subscriber.close(CloseReason.RESYNC)

    async def _live(self) -> None:
        subscriber = self.subscriber
        while subscriber.close_reason is None:
            remaining = self._lifetime_left()
            if remaining <= 0:
                subscriber.close(self._lifetime_reason())
                break
            writes = subscriber.writes
            await subscriber.wait(timeout=min(self.config.heartbeat_interval, remaining))
            if subscriber.close_reason is not None:
                break
            if subscriber.queued:
                # The hub found no room for these: wait for it, then write them.
                if await self._room():
                    metrics.events_delivered(subscriber.flush())
            elif subscriber.writes == writes:  # idle: nothing written meanwhile
                token = await self._token()
                if subscriber.writes == writes:  # still: an id older than a frame would go back
                    subscriber.write(heartbeat_frame(token))
                    metrics.stream_writes_flush()  # an idle process's writes are counted too

    async def _farewell(self) -> None:
        """What is still queued (unless sent away as slow), then the `reconnect` frame."""
        subscriber = self.subscriber
        if subscriber.close_reason == CloseReason.SLOW or self._credentials_ended():
            subscriber.drop_queued()
        while subscriber.queued:
            if not await self._room():
                subscriber.drop_queued()
                break
            metrics.events_delivered(subscriber.write_queued())
        subscriber.write(reconnect_frame(subscriber.close_reason or CloseReason.RESYNC, await self._token()))

    async def _token(self) -> str:
        return await short_token(self.hub, self.subscriber, log_topic=self.kafka.positions_topic)

    async def _room(self) -> bool:
        """Wait for room in the connection; a client that leaves none for the stall timeout is
        sent away as slow (unless already closing for another reason). False then."""
        transport = self.subscriber.transport
        if transport.has_room():
            return True
        if self.subscriber.close_reason == CloseReason.SLOW:
            return False  # its queue overflowed meanwhile: no need to wait any longer
        if await transport.writable(self.config.stall_timeout):
            return True
        self.subscriber.close(CloseReason.SLOW)
        return False

    def _lifetime_reason(self) -> str:
        """`lifetime`, or, when the credentials' expiry ended it, the principal's reason for that
        (`session_expired`), else `auth_expired`."""
        if not self.config.credentials_end:
            return CloseReason.LIFETIME
        expiry = self.principal.expiry_reason if self.principal is not None else None
        return expiry or CloseReason.AUTH_EXPIRED

    def _credentials_ended(self) -> bool:
        """Ended because its credentials are no longer in force (changed, logged out, expired)."""
        reason = self.subscriber.close_reason
        expiry = self.principal.expiry_reason if self.principal is not None else None
        return reason in ACCESS_REASONS or (expiry is not None and reason == expiry)

    def _lifetime_left(self) -> float:
        if self.config.max_lifetime <= 0:
            return float("inf")
        return self.config.max_lifetime - (time.monotonic() - self.started)
