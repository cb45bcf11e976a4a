"""The Kafka consumer loop behind `manage.py consume_events`.

Reads the configured topics as one consumer-group member and publishes each poll's
records (every partition's in order) to every web process through the channel layer,
as one message when they fit: each message costs a web process several Redis round
trips to receive, so fewer, fuller messages keep its intake ahead at high rates. Kafka
holds a fetch briefly for more records (CONSUMER_BATCH_WAIT_MS) for the same reason on
this side: a poll costs the consumer its round trips whatever it holds.
Offsets are committed only after the layer accepted the records, in batches
(`commits.py`), so a crash replays rather than loses (web processes drop the replayed
duplicates by offset).

Nothing a record contains can stop it. Every record becomes exactly one payload
(`crm_events.core.records`); one the Kafka client cannot parse is published marked
`undecodable` with its position, counted, logged, copied to the dead-letter topic when
one is set, and committed past. A refusal of the layer is not an outage (`layer_send.py`):
a refused batch is split, a record the layer cannot carry travels by reference (web
processes read it from Kafka), or marked when even that is refused; and while the layer
accepts nothing, the heartbeat says publishing is stalled (`publish_watch.py`). And the loop is
its own supervisor: whatever fails (Kafka, Redis, a bug), it logs why, reconnects
after a bounded backoff and goes on, until it is told to stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.errors import KafkaError
from channels.layers import BaseChannelLayer
from redis.exceptions import RedisError

from crm_events import metrics
from crm_events.config import KafkaConfig
from crm_events.core import messages as broadcast
from crm_events.core.backoff import Backoff
from crm_events.core.records import (
    VALUE_REGISTRY_UNDECODED,
    VALUE_UNDECODABLE,
    KafkaRecord,
    UnparseableRecord,
    WireDecoder,
    record_decode,
    undecodable_payload,
)
from crm_events.core.tasks import task_stop
from crm_events.ingest.commits import Commits
from crm_events.ingest.dead_letters import DeadLetters
from crm_events.ingest.layer_send import RecordsSender
from crm_events.ingest.liveness import LoopProgress
from crm_events.ingest.position_log import PositionLogWriter
from crm_events.ingest.publish_watch import PublishWatch
from crm_events.kafka.clients import group_consumer_create, kafka_prepare
from crm_events.kafka.diagnosis import failure_explain
from crm_events.kafka.fetch import Fetched, records_fetch
from crm_events.registry import registry_decoder

logger = logging.getLogger(__name__)

POLL_TIMEOUT_MS = 1000
KAFKA_REFUSED_LOG = "Kafka at %s refused this consumer: %s; retrying in %.1fs"
KAFKA_UNREACHABLE_LOG = "Kafka at %s is unreachable (%s); retrying in %.1fs"
REVOKED_COMMIT_LOG = "could not commit the revoked partitions (%s); their next owner replays more"
HEARTBEAT_TIMEOUT_MIN = 2.0
DEFAULT_STALL_SECONDS = 45.0

class PositionTracker(ConsumerRebalanceListener):
    """Knows, per assigned partition, the consumer's position before the next record."""

    def __init__(
        self, consumer: AIOKafkaConsumer, *, on_assigned: Callable[[], None] = lambda: None,
        on_revoked: Callable[[list[TopicPartition]], Awaitable[None]] | None = None,
    ) -> None:
        self._consumer = consumer
        self._on_assigned = on_assigned
        self._on_revoked = on_revoked
        self.next_offsets: dict[TopicPartition, int] = {}

    def standing(self) -> dict[tuple[str, int], int]:
        """Where the consumer stands in every partition it owns (for a snapshot)."""
        return {(tp.topic, tp.partition): offset for tp, offset in self.next_offsets.items()}

    async def end_offsets(self, positions: list[tuple[str, int]]) -> dict[tuple[str, int], int]:
        ends = await self._consumer.end_offsets([TopicPartition(*position) for position in positions])
        return {(tp.topic, tp.partition): offset for tp, offset in ends.items()}

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        if self._on_revoked is not None:
            try:
                await self._on_revoked(revoked)  # what we published of them: their next owner goes on
            except (KafkaError, OSError) as error:
                logger.warning(REVOKED_COMMIT_LOG, error)
        for tp in revoked:
            self.next_offsets.pop(tp, None)

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        for tp in assigned:
            self.next_offsets[tp] = await self._consumer.position(tp)
        self._on_assigned()
        logger.info("assigned partitions %s", sorted(f"{tp.topic}:{tp.partition}" for tp in assigned))


class EventPublisher:
    """One consumer-group member publishing into the channel layer until stopped."""

    def __init__(
        self, *, config: KafkaConfig, layer: BaseChannelLayer, heartbeat_interval: float,
        stall_threshold: float = DEFAULT_STALL_SECONDS,
    ):
        self.config = config
        self.layer = layer
        self.heartbeat_interval = heartbeat_interval
        self.consumer_id = f"consumer-{uuid.uuid4().hex[:8]}"
        self.stopping = asyncio.Event()
        self.source = ""  # the Kafka cluster id, once known
        self.dead_letters = DeadLetters(config)
        # Values in the Confluent wire format are decoded here, once, before the layer.
        self.wire = registry_decoder()
        self.position_log = PositionLogWriter(config, consumer_id=self.consumer_id)
        self.consumed = 0  # records published, for the status line
        self.last_lag: dict[str, int] | None = None  # per partition, from the last heartbeat
        self.watch = PublishWatch(stall_threshold)
        self.progress = LoopProgress()  # each turn of the loop marks it: the consumer's /livez
        self.sender = RecordsSender(
            layer=layer, stopping=self.stopping, backoff_max=config.retry_backoff_max, watch=self.watch
        )

    async def run(self) -> None:
        """Consume until `stop()`, reconnecting after any failure (each one logged)."""
        backoff = Backoff(maximum=self.config.retry_backoff_max)
        try:
            while not self.stopping.is_set():
                self.progress.beat()
                if await self._session_supervised():
                    backoff.reset()
                if not self.stopping.is_set():
                    await self._sleep_unless_stopping(backoff.next_delay())
        finally:
            await self.dead_letters.close()
            await self.position_log.close()
            logger.info("consumer %s stopped", self.consumer_id)

    def stop(self) -> None:
        self.stopping.set()

    async def _session_supervised(self) -> bool:
        """One connection's life; True if it got as far as consuming."""
        consumer = await self._connect()
        if consumer is None:
            return False
        try:
            await self._consume(consumer)
        except (KafkaError, OSError) as error:
            metrics.CONSUMER_RESTARTS.labels(reason="kafka").inc()
            logger.warning("Kafka failed while consuming (%r); reconnecting", error)
        except Exception:  # noqa: BLE001 - a bug must cost a reconnect, never the consumer
            metrics.CONSUMER_RESTARTS.labels(reason="error").inc()
            logger.exception("consumer %s failed unexpectedly; reconnecting", self.consumer_id)
        finally:
            with contextlib.suppress(KafkaError, OSError):
                await consumer.stop()
        return True

    async def _connect(self) -> AIOKafkaConsumer | None:
        backoff = Backoff(maximum=self.config.retry_backoff_max)
        while not self.stopping.is_set():
            self.progress.beat()  # trying to reach Kafka is progress; hanging in the attempt is not
            consumer = group_consumer_create(self.config)
            try:
                self.source = await kafka_prepare(self.config)
                await consumer.start()
                return consumer
            except (KafkaError, OSError) as error:
                await consumer.stop()
                delay = backoff.next_delay()
                await self._connect_failure_log(error, delay)
                await self._sleep_unless_stopping(delay)
        return None

    async def _connect_failure_log(self, error: BaseException, delay: float) -> None:
        """One line: the refusal's cause when Kafka (or the token endpoint) refused us, which
        aiokafka reports only as `Unable to bootstrap`; else that Kafka is unreachable."""
        brokers = ",".join(self.config.brokers_redacted)
        refused = await failure_explain(self.config, error)
        if refused is not None:
            logger.error(KAFKA_REFUSED_LOG, brokers, refused, delay)
        else:
            logger.warning(KAFKA_UNREACHABLE_LOG, brokers, error, delay)

    async def _consume(self, consumer: AIOKafkaConsumer) -> None:
        commits = Commits(consumer)
        tracker = PositionTracker(
            consumer, on_assigned=self.position_log.snapshot_due, on_revoked=commits.flush)
        self.watch.idle()  # what a failed session left waiting is polled again, from now
        consumer.subscribe(topics=list(self.config.topics), listener=tracker)
        heartbeat = asyncio.create_task(self._heartbeat_loop(consumer, tracker), name="consumer-heartbeat")
        try:
            while not self.stopping.is_set():
                batches = await records_fetch(
                    consumer, list(tracker.next_offsets), next_offsets=tracker.next_offsets,
                    timeout_ms=POLL_TIMEOUT_MS, max_records=self.config.batch_max_records,
                )
                self.progress.beat()  # a poll that came back, with records or none (an idle topic)
                if batches and await self.publish_poll(tracker, batches):
                    commits.published(
                        {tp: tracker.next_offsets[tp] for tp in batches if tp in tracker.next_offsets})
                    await commits.due()
                elif not batches:
                    await commits.flush()  # the flow paused: nothing to share the round trip with
                    if self.position_log.snapshot_pending and tracker.next_offsets:
                        await self.snapshot_publish(tracker)
            await commits.flush()  # told to stop: everything published is committed
        finally:
            await task_stop(heartbeat)

    async def snapshot_publish(self, tracker: PositionTracker) -> None:
        """An empty numbered batch carrying the snapshot that new partitions call for, so web
        processes can give short ids before the first record comes."""
        numbered = await self.position_log.append([], tracker.standing, ends=tracker.end_offsets)
        if numbered is not None:
            await self.sender.publish([], numbered)

    async def publish_poll(self, tracker: PositionTracker, batches: Fetched) -> bool:
        """Publish one poll's records, each partition's in order; False if stopped before all
        were accepted (then nothing is committed, and they are published again later)."""
        items, records, next_offsets = [], {}, {}
        # Every schema this poll needs, before any record is decoded (waits out a registry
        # restart within SCHEMA_REGISTRY_RETRY_SECONDS; the records keep their order).
        await self.wire.prepare(record for polled in batches.values() for record in polled)
        self.progress.beat()
        for tp, polled in batches.items():
            # Below what we last published only when the log started over (its topic recreated,
            # say): our position was reset to the new log's start, at or before this record.
            prev = min(tracker.next_offsets.get(tp, polled[0].offset), polled[0].offset)
            for record in polled:
                item = _record_item(record, prev=prev, wire=self.wire)
                items.append(item)
                records[id(item)] = record
                prev = record.offset + 1
            next_offsets[tp] = prev
        self.watch.records_waiting()
        self.sender.source = self.source
        # Where the consumer stands before each batch: a snapshot in the positions log says so.
        advanced: dict[tuple[str, int], int] = {}
        for batch in broadcast.batches_split(items):
            after = {(i["event"]["topic"], i["event"]["partition"]): i["event"]["offset"] + 1 for i in batch}
            numbered = await self.position_log.append(
                batch, lambda: {**tracker.standing(), **advanced}, ends=tracker.end_offsets
            )
            if not await self.sender.publish(batch, numbered):  # may turn items into references
                return False
            self.progress.beat()  # accepted: a publish waiting on the layer is not progress
            advanced.update(after)
        self.watch.idle()
        for item in items:
            await self._travel_report(item, records[id(item)])
        for tp, polled in batches.items():
            tracker.next_offsets[tp] = next_offsets[tp]
            metrics.events_consumed(tp.topic, len(polled))
            self.consumed += len(polled)
        return True

    async def _travel_report(self, item: dict[str, Any], record: KafkaRecord) -> None:
        """Count and log a record that did not travel whole: by reference, or marked."""
        reference = broadcast.item_reference(item)
        if reference is not None:
            metrics.record_by_reference(record.topic)
            logger.warning(
                "record %s:%s@%s (%d bytes) published by reference, for web processes to read from "
                "Kafka: %s", record.topic, record.partition, record.offset, item["size"], reference["reason"],
                extra={"topic": record.topic, "partition": record.partition, "offset": record.offset},
            )
        elif item["event"]["value_format"] == VALUE_UNDECODABLE:
            await self._undecodable_report(record, item["event"].get("error", ""))
        elif VALUE_REGISTRY_UNDECODED in (item["event"]["value_format"], item["event"].get("key_format")):
            await self._registry_undecoded_report(record, item["event"])

    async def _undecodable_report(self, record: KafkaRecord, reason: str) -> None:
        metrics.record_undecodable(record.topic)
        logger.warning(
            "record %s:%s@%s delivered marked undecodable: %s", record.topic, record.partition,
            record.offset, reason,
            extra={"topic": record.topic, "partition": record.partition, "offset": record.offset},
        )
        await self.dead_letters.send(record, reason)

    async def _registry_undecoded_report(self, record: KafkaRecord, event: dict[str, Any]) -> None:
        reason = event.get("value_error") or event.get("key_error") or ""
        logger.warning(
            "record %s:%s@%s delivered marked registry_undecoded: %s", record.topic, record.partition,
            record.offset, reason,
            extra={"topic": record.topic, "partition": record.partition, "offset": record.offset},
        )
        await self.dead_letters.send(record, reason)

    async def _heartbeat_loop(self, consumer: AIOKafkaConsumer, tracker: PositionTracker) -> None:
        while True:
            try:
                # Never under HEARTBEAT_TIMEOUT_MIN: a short interval must not turn a slow
                # answer from Kafka into no heartbeat at all.
                async with asyncio.timeout(max(self.heartbeat_interval, HEARTBEAT_TIMEOUT_MIN)):
                    lag = await lag_measure(consumer, tracker)
                metrics.consumer_lag_set({self.consumer_id: lag})
                self.last_lag = lag
                stalled = self.watch.stalled()
                metrics.publishing_stalled_set({self.consumer_id: stalled[0] if stalled else 0.0})
                # Read after the awaits: only records whose group_send has returned count.
                published = [(tp.topic, tp.partition, offset) for tp, offset in tracker.next_offsets.items()]
                await self.layer.group_send(
                    broadcast.BROADCAST_GROUP,
                    broadcast.heartbeat_message(
                        consumer_id=self.consumer_id, lag=lag, published=published, source=self.source,
                        stalled=stalled, registry=self.wire.outage(),
                    ),
                )
            except (KafkaError, RedisError, OSError, TimeoutError) as error:
                logger.warning("no heartbeat this round: %s", str(error) or type(error).__name__)
            except Exception:  # noqa: BLE001 - the heartbeat must outlive any one round
                logger.exception("heartbeat round failed unexpectedly")
            await asyncio.sleep(self.heartbeat_interval)

    async def _sleep_unless_stopping(self, delay: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(delay):
                await self.stopping.wait()


def _record_item(
    record: ConsumerRecord | UnparseableRecord, *, prev: int, wire: WireDecoder | None = None
) -> dict[str, Any]:
    size = len(record.value or b"") + len(record.key or b"")
    try:
        event = record_decode(record, wire)
    except Exception as error:  # noqa: BLE001 - one bad record must never stop the consumer
        logger.exception(
            "record %s:%s@%s could not be decoded; delivering it marked",
            record.topic, record.partition, record.offset,
        )
        event = undecodable_payload(
            topic=record.topic, partition=record.partition, offset=record.offset,
            error=f"{type(error).__name__}: {error}",
        )
    return broadcast.record_item(event, prev=prev, size=size)


async def lag_measure(consumer: AIOKafkaConsumer, tracker: PositionTracker) -> dict[str, int]:
    """Ask Kafka for the end offsets: a real round trip, so a heartbeat proves Kafka answers."""
    assigned = list(tracker.next_offsets)
    if not assigned:
        await consumer.topics()
        return {}
    before = dict(tracker.next_offsets)
    ends = await consumer.end_offsets(assigned)
    for tp, published in before.items():
        # A live log never ends before what was read from it (the end is the last stable offset):
        # this one started over. Claim no more than it holds, or web processes would wait for
        # offsets that will not come back; the next records' `prev` says the rest.
        if ends[tp] < published and tracker.next_offsets.get(tp) == published:
            logger.warning("partition %s:%s ends at %s, before the %s published: it started over",
                           tp.topic, tp.partition, ends[tp], published)
            tracker.next_offsets[tp] = ends[tp]
    return {
        f"{tp.topic}:{tp.partition}": max(0, ends[tp] - tracker.next_offsets.get(tp, ends[tp]))
        for tp in assigned
    }


async def publisher_run_until_signalled(publisher: EventPublisher) -> None:
    """Run the publisher; SIGINT or SIGTERM lets the current batch finish, then stops."""
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, publisher.stop)
    try:
        await publisher.run()
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
