"""Keeping the hub where the positions log says it is, so its resume ids stay short.

Two duties, both for `hub.py`. A supervised loop rebuilds the hub's view of the log
(`LogCursor.rebase`) whenever something the log does not account for happened; it never
ends, and a failure only costs long ids for a while, logged. And batches the hub never got
from the layer (lost on the way, or still on it from another consumer) are read back from
the log and from Kafka in the log's order, before the batch that showed them missing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Protocol

from crm_events.core.backoff import Backoff
from crm_events.core.position_log import LogRecord
from crm_events.core.positions import Position
from crm_events.exceptions import KafkaUnavailable
from crm_events.fanout.log_cursor import LogCursor
from crm_events.kafka.position_log import PositionLogReader

logger = logging.getLogger(__name__)

# How often the loop looks whether the hub's view of the log needs rebuilding.
LOG_FOLLOW_PERIOD = 0.5


class Follower(Protocol):
    """What reading missed batches back needs of the hub."""

    cursor: LogCursor
    positions: dict[Position, int]
    repairer: Callable[[Position, int, int], Awaitable[None]]
    log_records: Callable[[int, int], Awaitable[list[tuple[int, LogRecord]]]]


async def log_follow(cursor: LogCursor, log: PositionLogReader, *, backoff_max: float) -> None:
    """Rebuild the view of the positions log whenever the hub's positions left it; forever."""
    backoff = Backoff(maximum=backoff_max)
    while True:
        if cursor.based:
            await asyncio.sleep(LOG_FOLLOW_PERIOD)
            continue
        try:
            based = await cursor.rebase(log.state_at, log.end)
        except KafkaUnavailable as error:
            logger.warning("cannot read the positions log (%s); resume ids stay full-length", error)
            based = False
        except Exception:  # noqa: BLE001 - short ids are an optimisation: never the hub's end
            logger.exception("reading the positions log failed unexpectedly")
            based = False
        if based:
            backoff.reset()
            logger.info("event hub follows the positions log from batch %s", cursor.applied)
        else:
            await asyncio.sleep(backoff.next_delay())


async def batches_missed(hub: Follower, first: int, last: int) -> None:
    """Read batches `first`..`last` from the positions log, and their records from Kafka, in the
    log's order. If the log cannot be read, the repair by `prev` and heartbeats still fills the
    hole, and ids are long until the view is rebuilt."""
    try:
        missed = await hub.log_records(first, last)
    except KafkaUnavailable as error:
        logger.warning("batches %s-%s missed and the positions log unreadable (%s)", first, last, error)
        return
    for number, record in missed:
        hub.cursor.batch_begin((number, dict(record.snapshot) if record.snapshot else None))
        for index, segment in enumerate(record.segments):
            expected = hub.positions.get(segment.position)
            if expected is not None and segment.end > expected:
                await hub.repairer(segment.position, expected, segment.end)
            hub.cursor.passed(segment.position, segment.end - 1, index)
        hub.cursor.batch_end()
