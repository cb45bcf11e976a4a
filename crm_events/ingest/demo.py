"""Realistic demo CRM events: leads, contacts, deals and tickets moving through their lives.

Each entity's events share its id as the Kafka key, so one entity's history stays
in one partition, in order, as a real CRM's outbox would write it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from crm_events.config import KafkaConfig
from crm_events.kafka.clients import producer_create

logger = logging.getLogger(__name__)

LIFECYCLES: dict[str, list[str]] = {
    "lead": ["lead.created", "lead.contacted", "lead.qualified", "lead.converted"],
    "contact": ["contact.created", "contact.updated", "contact.subscribed"],
    "deal": ["deal.created", "deal.stage_changed", "deal.stage_changed", "deal.won"],
    "ticket": ["ticket.opened", "ticket.assigned", "ticket.commented", "ticket.resolved"],
}
DEAL_STAGES = ["prospecting", "qualification", "proposal", "negotiation", "won"]
COMPANIES = ["Acme Corp", "Globex", "Initech", "Umbrella", "Hooli", "Stark Industries"]
OWNERS = ["ana", "bo", "chen", "dara", "eli"]


def _details(entity: str, step: int) -> dict[str, Any]:
    if entity == "deal":
        stage = DEAL_STAGES[min(step, len(DEAL_STAGES) - 1)]
        return {"stage": stage, "amount": random.randrange(1_000, 250_000, 500), "currency": "EUR"}
    if entity == "ticket":
        return {"priority": random.choice(["low", "normal", "high"]), "owner": random.choice(OWNERS)}
    return {"company": random.choice(COMPANIES), "owner": random.choice(OWNERS)}


def demo_events(seed: int | None = None) -> Iterator[tuple[str, dict[str, Any]]]:
    """Endless (key, value) pairs: several entities advancing through their lifecycles."""
    rng = random.Random(seed)
    active: list[tuple[str, str, int]] = []
    while True:
        if len(active) < 8 or rng.random() < 0.2:
            entity = rng.choice(list(LIFECYCLES))
            active.append((entity, f"{entity}-{uuid.uuid4().hex[:8]}", 0))
        index = rng.randrange(len(active))
        entity, entity_id, step = active[index]
        event_type = LIFECYCLES[entity][step]
        yield entity_id, {
            "type": event_type,
            "id": str(uuid.uuid4()),
            "occurred_at": datetime.now(UTC).isoformat(),
            "entity": entity,
            "entity_id": entity_id,
            entity: _details(entity, step),
        }
        if step + 1 < len(LIFECYCLES[entity]):
            active[index] = (entity, entity_id, step + 1)
        else:
            active.pop(index)


class KafkaNotReached(Exception):
    """The producer could not reach Kafka within the connect timeout; the text says why."""


class _AttemptFailed(Exception):
    """One attempt to reach Kafka failed; the text is aiokafka's reason."""


CONNECT_RETRY_SECONDS = 2.0
PROGRESS_SECONDS = 5.0
KAFKA_NOT_REACHED = "Kafka at {brokers} did not answer within {timeout:g}s (--connect-timeout): {error}"


class _ConnectErrors(logging.Filter):
    """Holds back aiokafka's own error line per failed attempt, keeping its text: it says why
    (`Connect call failed`), where the exception only says `Unable to bootstrap`."""

    def __init__(self) -> None:
        super().__init__()
        self.last = ""

    def filter(self, record: logging.LogRecord) -> bool:
        self.last = record.getMessage()
        return False


async def _producer_start(config: KafkaConfig, timeout: float | None) -> AIOKafkaProducer:
    """One attempt; `_AttemptFailed` with aiokafka's reason when Kafka does not answer."""
    producer, errors = producer_create(config), _ConnectErrors()
    logging.getLogger("aiokafka").addFilter(errors)
    try:
        async with asyncio.timeout(timeout):
            await producer.start()
        return producer
    except (KafkaError, OSError, TimeoutError) as error:
        await producer.stop()
        raise _AttemptFailed(errors.last or str(error) or f"no answer ({type(error).__name__})") from None
    finally:
        logging.getLogger("aiokafka").removeFilter(errors)


async def producer_connect(config: KafkaConfig, *, timeout: float) -> AIOKafkaProducer:
    """A started producer; while Kafka is unreachable, one warning per attempt, until `timeout`
    seconds have gone (0: for ever), then `KafkaNotReached`."""
    brokers = ",".join(config.brokers_redacted)
    deadline = time.monotonic() + timeout if timeout else None
    while True:
        remaining = None if deadline is None else max(deadline - time.monotonic(), 0.001)
        try:
            return await _producer_start(config, remaining)
        except _AttemptFailed as error:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                raise KafkaNotReached(KAFKA_NOT_REACHED.format(brokers=brokers, timeout=timeout,
                                                               error=error)) from None
            delay = CONNECT_RETRY_SECONDS if remaining is None else min(CONNECT_RETRY_SECONDS, remaining)
            left = "no time limit" if remaining is None else f"{remaining:.0f}s left"
            logger.warning("Kafka at %s is unreachable (%s); trying again in %.1fs (%s)",
                           brokers, error, delay, left)
            await asyncio.sleep(delay)


class Progress:
    """How many were sent and how fast: a line every `PROGRESS_SECONDS` and a summary at the end."""

    def __init__(self, *, topic: str, count: int) -> None:
        self.topic, self.count, self.sent = topic, count, 0
        self.started = self.last_line = time.monotonic()

    def line(self) -> str:
        elapsed = max(time.monotonic() - self.started, 1e-9)
        of = f"/{self.count}" if self.count else ""
        rate = self.sent / elapsed
        return f"sent {self.sent}{of} events to {self.topic}, {rate:.1f}/s, {elapsed:.1f}s elapsed"

    def one_sent(self) -> None:
        self.sent += 1
        if self.count and time.monotonic() - self.last_line >= PROGRESS_SECONDS:
            self.last_line = time.monotonic()
            logger.info("%s", self.line())


async def demo_produce(config: KafkaConfig, *, topic: str, rate: float, count: int,
                       connect_timeout: float, progress: Progress | None = None) -> int:
    """Produce `count` demo events (0: until cancelled) at `rate` per second; return how many.
    With `count`, progress every few seconds; the summary is logged however it ends."""
    progress = progress or Progress(topic=topic, count=count)
    producer = await producer_connect(config, timeout=connect_timeout)
    try:
        for key, value in demo_events():
            if count and progress.sent >= count:
                break
            headers = [("event-type", value["type"].encode()), ("source", b"aetherlink-demo")]
            await producer.send(topic, json.dumps(value).encode(), key=key.encode(), headers=headers)
            progress.one_sent()
            await asyncio.sleep(1 / rate)
        await producer.flush()
    finally:
        await producer.stop()
        logger.info("done: %s", progress.line())
    return progress.sent
