"""Repairing the live path: records a hub never got from the layer, read from Kafka.

Records published while a web process was out of the broadcast group (Redis
restarted, say) never reach it. The hub notices the hole (a record's `prev`, or a
consumer heartbeat's `published`, above its position) and reads the range from
Kafka, passing the records on in order before going on, so no client sees a hole.
If Kafka cannot give them back in time, every stream is sent away with its resume
id: reconnecting, each catches up from Kafka itself.

A record that came by reference (the layer could not carry it: too large for a Redis
with little room, say) is read the same way, alone, at its offset.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

from aiokafka import TopicPartition

from crm_events import metrics
from crm_events.config import KafkaConfig
from crm_events.core.close_reasons import CloseReason
from crm_events.core.live_event import LiveEvent
from crm_events.core.positions import Position
from crm_events.exceptions import KafkaUnavailable
from crm_events.kafka.replay import ReplayReader

logger = logging.getLogger(__name__)

REPAIR_TIMEOUT = 30.0


class Repairable(Protocol):
    """What a repair needs of the hub."""

    config: KafkaConfig
    positions: dict[Position, int]

    def event_pass(self, event: LiveEvent) -> None: ...
    def flush_all(self) -> None: ...
    def close_all(self, reason: str) -> None: ...


async def live_path_repair(hub: Repairable, position: Position, start: int, stop: int) -> None:
    """Pass on the records [start, stop) that the live path lost, read from Kafka."""
    logger.warning("live path lost %s:%s offsets %s..%s; reading them from Kafka", *position, start, stop - 1)
    await _read_or_resync(hub, position, start, stop)


async def referenced_record_pass(hub: Repairable, position: Position, offset: int, reason: str) -> None:
    """Pass on the record at `offset`, which came by reference, read from Kafka (a record
    that is gone from Kafka by now is passed over, as a catch-up would)."""
    logger.info("record %s:%s@%s came by reference (%s); reading it from Kafka", *position, offset, reason)
    metrics.hub_record_by_reference(position[0])
    hub.positions.setdefault(position, offset)  # before the hub's positions are known
    await _read_or_resync(hub, position, offset, offset + 1)


async def _read_or_resync(hub: Repairable, position: Position, start: int, stop: int) -> None:
    try:
        async with asyncio.timeout(REPAIR_TIMEOUT):
            await _replay_range(hub, TopicPartition(*position), start, stop)
    except (KafkaUnavailable, TimeoutError) as error:
        # Without the missing records no client can be kept gap-free here: send every
        # client away with its resume id; reconnecting, each catches up from Kafka.
        logger.error("reading %s:%s from Kafka failed (%s); clients will resume from Kafka", *position, error)
        hub.close_all(CloseReason.RESYNC)
        hub.positions[position] = stop


async def _replay_range(hub: Repairable, tp: TopicPartition, start: int, stop: int) -> None:
    position = (tp.topic, tp.partition)
    async with ReplayReader(hub.config, {tp: start}, limited=False) as reader:
        while hub.positions[position] < stop:
            for record in (await reader.fetch([tp])).get(tp, []):
                if record.offset >= stop:
                    break
                hub.event_pass(LiveEvent.of_record(record, reader.wire))
            hub.flush_all()
            reached = min(await reader.next_offset(tp), stop)
            hub.positions[position] = max(hub.positions[position], reached)
