"""The per-process fan-out: one channel-layer subscription feeding every SSE client.

Each web process runs one `EventHub`. It holds a single channel in the broadcast
group, so the layer carries one message per batch of events per process however
many clients are connected. For every event it encodes the JSON once, and the
frame (with its resume id) once per distinct topic selection, and offers those
bytes to each connected `StreamSubscriber`.

The hub keeps `positions`: per partition, the offset after the last event it has
passed on. They start at Kafka's end offsets, so a `from=latest` stream starts
from them without asking Kafka. A record below its partition's position is a
replay (a restarted consumer) and is dropped; a record whose `prev` lies above it
means the live path lost records (Redis restarted, say), and the hub reads the
missing range from Kafka before going on, so the live stream never has holes. A
record the layer could not carry comes by reference (its position only), and the hub
reads it from Kafka the same way, in its place.
Partitions added to a topic, gone from it, or started over (a topic recreated) are
found by a `PartitionWatch` (partitions.py), or, for an added one, by its first
record; the hub then changes its positions and its subscribers' together.

Nothing that arrives can stop the hub. Every layer message is checked before use
(`crm_events.core.messages`): one it does not understand is counted, logged sparingly
and skipped (`crm_events.fanout.foreign`), and the records it skipped come back
by the usual repair when the next record or consumer heartbeat shows the hole. An
event that cannot be encoded is skipped the same way; a subscriber that fails is
sent away alone. Any other error ends the receive loop, which is restarted by its
supervisor (`_receive_supervised`) after logging it; `/readyz` and `/status` name that state.

Writing to clients is self-clocked: after a batch the hub writes at once, unless
its previous write round ended less than that round's own duration ago; then it
writes when that much time has passed. At light load every batch goes out as it
comes; when batches come faster than a round of writes takes, the frames of several
batches go out together, one socket write per client, and writing never takes more
than about half of the process's time.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from channels.layers import BaseChannelLayer

from crm_events import metrics
from crm_events.config import KafkaConfig
from crm_events.core import messages as broadcast
from crm_events.core.backoff import Backoff
from crm_events.core.canary import is_canary
from crm_events.core.close_reasons import CloseReason
from crm_events.core.live_event import LiveEvent
from crm_events.core.log_tokens import AMENDED_MAX, amended_token_encode, log_token_encode
from crm_events.core.position_log import LogRecord
from crm_events.core.positions import Position, positions_text
from crm_events.core.tasks import task_stop
from crm_events.core.tokens import token_encode
from crm_events.exceptions import KafkaUnavailable
from crm_events.fanout.foreign import ForeignMessages
from crm_events.fanout.live_tap import LiveTap
from crm_events.fanout.log_cursor import LogCursor
from crm_events.fanout.log_follow import batches_missed, log_follow
from crm_events.fanout.matching import SubscriberIndex
from crm_events.fanout.observer import HubObserver
from crm_events.fanout.owners import StreamOwners
from crm_events.fanout.partitions import PartitionWatch
from crm_events.fanout.repair import live_path_repair, referenced_record_pass
from crm_events.fanout.subscriber import StreamSubscriber
from crm_events.fanout.subscription import LayerSubscription
from crm_events.kafka.offsets import OffsetLookup
from crm_events.kafka.position_log import PositionLogReader
from crm_events.kafka.position_registry import PositionRegistry

logger = logging.getLogger(__name__)

RESTART_BACKOFF_MAX = 5.0
# More batches missed than this are left to the repair by `prev` and a rebuilt view.
MISSED_BATCHES_MAX = 1000


class EventHub:
    """Receives broadcast messages for this process and fans them out in-process."""

    def __init__(self, layer: BaseChannelLayer, config: KafkaConfig) -> None:
        self.layer = layer
        self.config = config
        self.offsets = OffsetLookup(config)
        self.subscribers: set[StreamSubscriber] = set()  # live: indexed, or not yet in sync
        self.catching_up: set[StreamSubscriber] = set()
        self.owners = StreamOwners()  # whose streams these are: access messages end them
        # The live ones in sync, found by what they match.
        self.index: SubscriberIndex[StreamSubscriber] = SubscriberIndex()
        self.unsynced: set[StreamSubscriber] = set()  # live, positions of their own: asked per event
        self._dirty: set[StreamSubscriber] = set()  # given frames since the last round of writes
        self._failed: list[StreamSubscriber] = []
        self.drained = asyncio.Event()  # set while no stream is attached
        self.drained.set()
        self.positions: dict[Position, int] = {}
        self.positions_ready = asyncio.Event()
        # Where the hub stands in the positions log, for short resume ids (see log_cursor.py).
        self.position_log = PositionLogReader(config)
        self.registry = PositionRegistry(config)  # names positions no log point does
        self.cursor = LogCursor(self.positions, config.topics)
        self._log_token: tuple[object, str] | None = None
        self.last_heartbeat_at: float | None = None
        self.consumer_lag: dict[str, dict[str, int]] = {}
        self._lag_heard_at: dict[str, float] = {}  # per consumer: when its lag last came
        # Per consumer whose last heartbeat said publishing is stalled: (seconds, reason, heard at).
        self.consumer_stalls: dict[str, tuple[float, str, float]] = {}
        # Per consumer whose last heartbeat said the Schema Registry is out of reach: the same.
        self.consumer_registry: dict[str, tuple[float, str, float]] = {}
        self.subscription = LayerSubscription(layer, broadcast.BROADCAST_GROUP, self.message_handle)
        self.served = frozenset(config.topics)
        self.source = ""  # the Kafka cluster id; messages from another cluster are skipped
        self.foreign = ForeignMessages()
        # Why the receive loop last failed, until a message is handled again; None: healthy.
        self.receive_failure: str | None = None
        self.partition_watch = PartitionWatch(self, period=config.metadata_max_age)
        # Sees every event the hub passes on (metrics, canary arrivals); never a subscriber.
        self.observer = HubObserver()
        self.observers: list[Callable[[dict[str, Any]], None]] = [self.observer.event_seen]
        self._shared_frames: dict[tuple[str, ...], bytes] = {}
        self.taps: list[LiveTap] = []  # streams about to join (see live_tap.py)
        self._tasks: list[asyncio.Task[None]] = []
        # Where the records a heartbeat says never came are read back from: Kafka (unit tests
        # give their own).
        self.repairer: Callable[[Position, int, int], Awaitable[None]] = self._repair_from_kafka
        # Where the records of batches it missed are read from: the positions log (tests: their own).
        self.log_records: Callable[[int, int], Awaitable[list[tuple[int, LogRecord]]]] = (
            self.position_log.records
        )
        # Where a record that came by reference is read from (position, offset, reason): Kafka.
        self.referencer: Callable[[Position, int, str], Awaitable[None]] = self._read_by_reference
        self._flush_timer: asyncio.TimerHandle | None = None
        self._flush_not_before = 0.0

    # --- lifecycle -------------------------------------------------------------------

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._receive_supervised(), name="event-hub-receive"),
            loop.create_task(self._positions_init(), name="event-hub-positions"),
            loop.create_task(self.partition_watch.run(), name="event-hub-partitions"),
            loop.create_task(self._log_follow(), name="event-hub-position-log"),
        ]

    async def _receive_supervised(self) -> None:
        """Run the layer subscription forever: an unexpected error restarts it, logged."""
        backoff = Backoff(maximum=RESTART_BACKOFF_MAX)
        while True:
            try:
                await self.subscription.run()
            except Exception as error:  # noqa: BLE001 - the hub must never end silently
                metrics.HUB_RESTARTS.inc()
                self.receive_failure = f"restarting after {type(error).__name__}: {error}"
                logger.exception("event hub: the receive loop failed; restarting it (what it missed is "
                                 "repaired from Kafka when the next record or heartbeat shows the hole)")
                await asyncio.sleep(backoff.next_delay())

    def close_all(self, reason: str) -> None:
        for subscriber in [*self.subscribers, *self.catching_up]:
            subscriber.close(reason)

    @property
    def stream_count(self) -> int:
        return len(self.subscribers) + len(self.catching_up)

    async def stop(self) -> None:
        self.close_all(CloseReason.SHUTDOWN)
        if self._flush_timer is not None:
            self._flush_timer.cancel()
        await asyncio.gather(*(task_stop(task) for task in self._tasks))
        await self.offsets.close()
        await self.position_log.close()
        await self.registry.close()

    def subscribe(self, subscriber: StreamSubscriber) -> None:
        """Join the live stream; call with no `await` since checking the client caught up."""
        self.catching_up.discard(subscriber)
        self.subscribers.add(subscriber)
        if self.in_sync(subscriber):
            self._index_join(subscriber)
        else:
            self.unsynced.add(subscriber)

    def _index_join(self, subscriber: StreamSubscriber) -> None:
        self.unsynced.discard(subscriber)
        subscriber.sync_to(self)
        self.index.add(subscriber)

    def attach(self, subscriber: StreamSubscriber) -> None:
        """Register a new stream that is still catching up (so shutdown can reach it)."""
        self.catching_up.add(subscriber)
        self.drained.clear()

    def tap_open(self, topics: tuple[str, ...], *, limit: int) -> LiveTap:
        """A tap on what this hub passes on for `topics`, from the end of its current batch
        (at once when it is between batches)."""
        tap = LiveTap(topics, limit=limit)
        self.taps.append(tap)
        if not self.cursor.in_batch:
            self._tap_start(tap)
        return tap

    def tap_close(self, tap: LiveTap) -> None:
        if tap in self.taps:
            self.taps.remove(tap)

    def _tap_start(self, tap: LiveTap) -> None:
        tap.start(self.cursor.point(), self.positions_for(tap.topics))

    def unsubscribe(self, subscriber: StreamSubscriber) -> None:
        self.subscribers.discard(subscriber)
        self.catching_up.discard(subscriber)
        self.index.discard(subscriber)
        self.unsynced.discard(subscriber)
        self._dirty.discard(subscriber)
        if not self.stream_count:
            self.drained.set()

    def heartbeat_age(self) -> float | None:
        """Seconds since a consumer heartbeat reached this process, None if none did."""
        if self.last_heartbeat_at is None:
            return None
        return time.monotonic() - self.last_heartbeat_at

    def consumer_lag_current(self, max_age: float) -> dict[str, dict[str, int]]:
        """The lag of each consumer heard from in the last `max_age` seconds. One that stopped
        (a restart, a scale-down) must not leave its last figure exported, and alerting, for ever."""
        now = time.monotonic()
        for consumer in [name for name, at in self._lag_heard_at.items() if now - at > max_age]:
            del self._lag_heard_at[consumer], self.consumer_lag[consumer]
            self.consumer_stalls.pop(consumer, None)
        return self.consumer_lag

    def publishing_stalls(self, max_age: float) -> dict[str, float]:
        """Per consumer heard from in the last `max_age` seconds: for how long its publishing
        has been stalled now (0: it is not)."""
        now = time.monotonic()
        lags = self.consumer_lag_current(max_age)
        return {
            consumer: (stall[0] + now - stall[2]) if (stall := self.consumer_stalls.get(consumer)) else 0.0
            for consumer in lags
        }

    def publishing_stalled(self, max_age: float) -> tuple[float, str] | None:
        """The longest stall of a consumer heard from in the last `max_age` seconds, with its reason."""
        stalls = self.publishing_stalls(max_age)
        longest = max((consumer for consumer, seconds in stalls.items() if seconds > 0),
                      key=stalls.__getitem__, default=None)
        return None if longest is None else (stalls[longest], self.consumer_stalls[longest][1])

    def registry_outage(self, max_age: float) -> tuple[float, str] | None:
        """The longest Schema Registry outage a consumer heard from in `max_age` seconds reports."""
        now = time.monotonic()
        outages = [(seconds + now - heard, reason) for consumer, (seconds, reason, heard)
                   in self.consumer_registry.items() if consumer in self.consumer_lag_current(max_age)]
        return max(outages, default=None)

    # --- positions -------------------------------------------------------------------

    async def _positions_init(self) -> None:
        """Start from Kafka's end offsets, retrying until Kafka answers."""
        backoff = Backoff(maximum=self.config.retry_backoff_max)
        while True:
            try:
                tps = await self.offsets.partitions(self.config.topics)
                ends = await self.offsets.end_offsets(tps)
                self.source = await self.offsets.cluster_id()
                break
            except KafkaUnavailable as error:
                delay = backoff.next_delay()
                logger.warning("cannot read end offsets yet (%s); retrying in %.1fs", error, delay)
                await asyncio.sleep(delay)
            except Exception:  # noqa: BLE001 - without positions no stream can start: keep trying
                delay = backoff.next_delay()
                logger.exception("reading end offsets failed unexpectedly; retrying in %.1fs", delay)
                await asyncio.sleep(delay)
        for tp, end in ends.items():
            position = (tp.topic, tp.partition)
            self.positions[position] = max(end, self.positions.get(position, 0))
        self.cursor.compare(list(self.positions))
        self.positions_ready.set()
        logger.info("event hub positioned at %s", positions_text(self.positions))

    async def _log_follow(self) -> None:
        await self.positions_ready.wait()
        await log_follow(self.cursor, self.position_log, backoff_max=self.config.retry_backoff_max)

    def resume_token(self, topics: tuple[str, ...]) -> str:
        """The id of the hub's positions in `topics`: a log point when the positions log accounts
        for them; the point and the few partitions where they differ from it; else, while the
        log's view is unknown, the positions spelled out."""
        point = self.cursor.point()
        if point is None:
            amended = self.cursor.amended(topics, AMENDED_MAX)
            if amended is None:
                return token_encode(self.positions_for(topics))
            if amended.exceptions:
                return amended_token_encode(amended, log_topic=self.config.positions_topic)
            point = amended.point  # they differ only in other topics
        cached = self._log_token
        if cached is None or cached[0] != point:
            cached = self._log_token = (point, log_token_encode(point, log_topic=self.config.positions_topic))
        return cached[1]

    def positions_for(self, topics: tuple[str, ...]) -> dict[Position, int]:
        return {position: offset for position, offset in self.positions.items() if position[0] in topics}

    def in_sync(self, subscriber: StreamSubscriber) -> bool:
        return subscriber.in_sync or subscriber.positions == self.positions_for(subscriber.topics)

    def shared_frame(self, event: LiveEvent, topics: tuple[str, ...]) -> bytes:
        """The event's frame for every in-sync subscriber of `topics`, built once."""
        frame = self._shared_frames.get(topics)
        if frame is None:
            frame = self._shared_frames[topics] = event.frame(self.resume_token(topics))
        return frame

    # --- handling broadcast messages -------------------------------------------------

    async def message_handle(self, message: object) -> None:
        """Handle one layer message; anything it does not understand is skipped."""
        problem = broadcast.envelope_check(message, source=self.source)
        if problem is not None:
            self.foreign.skipped(problem, message)
        elif message["type"] == broadcast.MESSAGE_RECORDS:  # type: ignore[index]
            await self.records_handle(message)  # type: ignore[arg-type]
        elif message["type"] == broadcast.MESSAGE_ACCESS:  # type: ignore[index]
            self.access_handle(message)  # type: ignore[arg-type]
        else:
            await self.heartbeat_handle(message)  # type: ignore[arg-type]
        self.receive_failure = None

    def access_handle(self, message: dict[str, Any]) -> None:
        """End the open streams an access message names (a grant changed, a logout)."""
        problem = broadcast.access_check(message)
        if problem is not None:
            self.foreign.skipped(problem, message)
            return
        closed = self.owners.revoke(
            subjects=message["subjects"], sessions=message["sessions"], reason=message["reason"]
        )
        metrics.streams_revoked(message["reason"], closed)
        logger.info("access message (%s): ended %d stream(s)", message["reason"], closed)

    async def records_handle(self, message: dict[str, Any]) -> None:
        records = broadcast.records_of(message)
        if records is None:
            self.foreign.skipped(broadcast.FOREIGN_MALFORMED, message)
            return
        numbered = broadcast.batch_number_of(message)
        missed = numbered[0] - self.cursor.applied - 1 if numbered is not None else 0
        if self.cursor.based and 0 < missed <= MISSED_BATCHES_MAX:
            await batches_missed(self, self.cursor.applied + 1, self.cursor.applied + missed)
        self.cursor.batch_begin(numbered)
        for item in records:
            problem = broadcast.record_item_check(item, served=self.served)
            if problem is not None:
                self.foreign.skipped(problem, item)
            else:
                await self.record_handle(item)
        self.cursor.batch_end()
        for tap in self.taps:
            if not tap.started.is_set():
                self._tap_start(tap)
        self.flush_soon()

    async def heartbeat_handle(self, message: dict[str, Any]) -> None:
        problem = broadcast.heartbeat_check(message)
        if problem is not None:
            self.foreign.skipped(problem, message)
            return
        self.last_heartbeat_at = time.monotonic()
        self.consumer_lag[message["consumer"]] = message["lag"]
        self._lag_heard_at[message["consumer"]] = self.last_heartbeat_at
        stalled = message.get("stalled")
        if stalled is None:
            self.consumer_stalls.pop(message["consumer"], None)
        else:
            heard = self.last_heartbeat_at
            self.consumer_stalls[message["consumer"]] = (stalled["seconds"], stalled["reason"], heard)
        registry = message.get("registry")
        if registry is None:
            self.consumer_registry.pop(message["consumer"], None)
        else:
            self.consumer_registry[message["consumer"]] = (
                registry["seconds"], registry["reason"], self.last_heartbeat_at
            )
        await self.published_check(message.get("published", []))

    async def _repair_from_kafka(self, position: Position, start: int, stop: int) -> None:
        await live_path_repair(self, position, start, stop)

    async def _read_by_reference(self, position: Position, offset: int, reason: str) -> None:
        await referenced_record_pass(self, position, offset, reason)

    async def published_check(self, published: list[list[Any]]) -> None:
        """A consumer published up to these offsets; records this hub never got were lost
        on the way (they went to Redis while it was away): read them from Kafka now."""
        for topic, partition, offset in published:
            expected = self.positions.get((topic, partition))
            if expected is not None and offset > expected:
                await self.repairer((topic, partition), expected, offset)

    async def record_handle(self, item: dict[str, Any]) -> None:
        topic, partition, offset = broadcast.item_position(item)
        position = (topic, partition)
        expected = self.positions.get(position)
        if expected is None and self.positions_ready.is_set():  # added to Kafka; the watch has not looked yet
            expected = self.partition_add(position, item["prev"])
        if expected is not None and offset < expected:
            # A restarted consumer replaying what this process already passed on.
            self.cursor.passed(position, offset, broadcast.segment_of(item))
            return
        if expected is not None and item["prev"] > expected:
            await self.repairer(position, expected, item["prev"])
        reference = broadcast.item_reference(item)
        self.cursor.passed(position, offset, broadcast.segment_of(item))
        if reference is None:
            self.event_dispatch(item["event"])
        else:
            await self.referencer(position, offset, reference["reason"])

    def event_dispatch(self, payload: dict[str, Any]) -> None:
        """Pass one event on to every subscriber; an event that cannot be encoded is skipped
        (its position is not taken, so the next record shows the hole and it is repaired)."""
        try:
            event = LiveEvent(payload)
        except (TypeError, ValueError) as error:
            self.foreign.skipped(broadcast.FOREIGN_RECORD_UNENCODABLE, (str(error), payload))
            return
        self.event_pass(event)

    def event_pass(self, event: LiveEvent) -> None:
        payload = event.payload
        self._observe(payload)
        self.positions[event.position] = event.offset + 1
        self.cursor.compare((event.position,))
        self._shared_frames.clear()
        dirty = self._dirty
        matching = self.index.matching(payload, canary=is_canary(payload), failed=self._filter_failed)
        for subscriber in matching:
            try:  # free in CPython 3.11 unless it raises
                if subscriber.take(self.shared_frame(event, subscriber.topics), event):
                    dirty.add(subscriber)
            except Exception:  # noqa: BLE001 - one client's failure is that client's alone
                self._subscriber_failed(subscriber, "offer")
        while self._failed:
            self.index.discard(self._failed.pop())
        for tap in self.taps:
            if event.topic in tap.topics and tap.started.is_set():
                tap.add(event, self.resume_token(tap.topics))
        for subscriber in list(self.unsynced):
            try:
                if subscriber.offer(event, self):
                    dirty.add(subscriber)
                if self.in_sync(subscriber):
                    self._index_join(subscriber)
            except Exception:  # noqa: BLE001 - one client's failure is that client's alone
                self._subscriber_failed(subscriber, "offer")

    def _observe(self, payload: dict[str, Any]) -> None:
        for observe in self.observers:
            try:
                observe(payload)
            except Exception:  # noqa: BLE001 - metrics must never stop delivery
                metrics.hub_error("observe")
                logger.exception("an event observer failed")

    def _filter_failed(self, subscriber: StreamSubscriber) -> None:
        self._subscriber_failed(subscriber, "offer")

    def _subscriber_failed(self, subscriber: StreamSubscriber, stage: str) -> None:
        metrics.hub_error(stage)
        logger.exception("a stream failed in the hub (%s); sending it away to resume", stage)
        subscriber.close(CloseReason.RESYNC)
        self._failed.append(subscriber)  # out of the index once the event is passed on

    def flush_soon(self) -> None:
        """Write queued frames now, or once the last round of writes is as long ago as it took."""
        if self._flush_timer is not None:
            return  # already due: the frames queued since go out with it
        loop = asyncio.get_running_loop()
        wait = self._flush_not_before - loop.time()
        if wait <= 0:
            self.flush_all()
        else:
            self._flush_timer = loop.call_later(wait, self.flush_all)

    def flush_all(self) -> None:
        """Write what the last batches queued to every client that has room (one write each)."""
        self._flush_timer = None
        loop = asyncio.get_running_loop()
        started = loop.time()
        written = 0
        dirty, self._dirty = self._dirty, set()
        for subscriber in dirty:  # only those given frames: a filtered audience is mostly idle
            try:
                written += subscriber.flush()
            except Exception:  # noqa: BLE001 - one client's failure is that client's alone
                self._subscriber_failed(subscriber, "write")
        if written:
            metrics.events_delivered(written)
        finished = loop.time()
        if dirty:
            metrics.WRITE_ROUND.observe(finished - started)
        self._flush_not_before = finished + (finished - started)

    # --- partitions added, gone or started over (found by partitions.py) --------

    def partition_add(self, position: Position, offset: int) -> int:
        """A partition this hub has never seen, so has passed nothing on from: every live
        subscriber of its topic takes it at the same offset (staying in sync, its resume id
        covering it). Streams still catching up notice and resume (see catch_up.py)."""
        self.positions[position] = offset
        self.cursor.compare((position,))
        # In-sync streams read the hub's positions, the new one included; the others take it too.
        for subscriber in list(self.unsynced):
            if position[0] in subscriber.topics and position not in subscriber.positions:
                subscriber.position_raise(position, offset)
                if self.in_sync(subscriber):
                    self._index_join(subscriber)
        logger.info("partition %s:%s added at offset %s", *position, offset)
        return offset

    def partition_remove(self, position: Position) -> None:
        """A partition gone from Kafka: its topic's streams resume, and learn it from a `reset` gap."""
        self.positions.pop(position, None)
        self.cursor.compare((position,))
        logger.warning("partition %s:%s no longer exists", *position)
        self._topic_resync(position[0])

    def partition_reset(self, position: Position, offset: int) -> None:
        """A partition whose log ends before our position (its topic recreated, or the log
        truncated): start over at its log start. Its topic's streams resume; their ids, now
        past the end, get a `reset` gap and restart there too."""
        logger.warning(
            "partition %s:%s ends before offset %s: started over at %s", *position, self.positions[position],
            offset,
        )
        self.positions[position] = offset
        self.cursor.compare((position,))
        self._topic_resync(position[0])

    def _topic_resync(self, topic: str) -> None:
        for subscriber in [*self.subscribers, *self.catching_up]:
            if topic in subscriber.topics:
                subscriber.close(CloseReason.RESYNC)
