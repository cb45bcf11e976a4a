"""Realistic demo CRM events: leads, contacts, deals and tickets moving through their lives.

Each entity's events share its id as the Kafka key, so one entity's history stays
in one partition, in order, as a real CRM's outbox would write it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

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


async def demo_produce(config: KafkaConfig, *, topic: str, rate: float, count: int) -> int:
    """Produce `count` demo events (0: until cancelled) at `rate` per second; return how many."""
    producer = producer_create(config)
    await producer.start()
    sent = 0
    try:
        for key, value in demo_events():
            if count and sent >= count:
                break
            headers = [("event-type", value["type"].encode()), ("source", b"aetherlink-demo")]
            await producer.send(topic, json.dumps(value).encode(), key=key.encode(), headers=headers)
            sent += 1
            await asyncio.sleep(1 / rate)
        await producer.flush()
    finally:
        await producer.stop()
    logger.info("produced %s demo events to %s", sent, topic)
    return sent
