"""The canary: a synthetic event sent through the real path to prove it works end to end.

With `CANARY_INTERVAL` > 0, `consume_events` produces one canary every interval
into the first topic: value `{"type": "aetherlink.canary", ...}` and header
`aetherlink-canary: 1`. It travels Kafka -> consume_events -> channel layer -> each
web process, whose `HubObserver` notes when it arrived; `/status` fails when none
arrived within `CANARY_MAX_AGE`. Streams hide canaries unless asked (`is_canary`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time

from aiokafka.errors import KafkaError

from crm_events.config import CanaryConfig, KafkaConfig
from crm_events.core.backoff import Backoff
from crm_events.core.canary import CANARY_HEADER, CANARY_TYPE
from crm_events.core.tasks import task_stop
from crm_events.ingest.publisher import EventPublisher, publisher_run_until_signalled
from crm_events.kafka.clients import producer_create

logger = logging.getLogger(__name__)


def canary_value(*, sender: str) -> bytes:
    return json.dumps({"type": CANARY_TYPE, "sender": sender, "sent_at": time.time()}).encode()


async def canary_produce_forever(config: KafkaConfig, *, interval: float, sender: str) -> None:
    """Produce a canary every `interval` seconds until cancelled, reconnecting as needed."""
    backoff = Backoff(maximum=config.retry_backoff_max)
    while True:
        try:
            await _canary_produce_session(config, interval=interval, sender=sender, backoff=backoff)
        except (KafkaError, OSError) as error:
            delay = backoff.next_delay()
            logger.warning("canary: Kafka unavailable (%s); retrying in %.1fs", error, delay)
            await asyncio.sleep(delay)
        except Exception:  # noqa: BLE001 - the canary must outlive any one failure
            delay = backoff.next_delay()
            logger.exception("canary: producing failed unexpectedly; retrying in %.1fs", delay)
            await asyncio.sleep(delay)


async def _canary_produce_session(
    config: KafkaConfig, *, interval: float, sender: str, backoff: Backoff
) -> None:
    topic = config.topics[0]
    producer = producer_create(config)
    try:
        await producer.start()
        backoff.reset()
        logger.info("canary: one event every %gs into %s", interval, topic)
        while True:
            await producer.send_and_wait(topic, canary_value(sender=sender), headers=[(CANARY_HEADER, b"1")])
            await asyncio.sleep(interval)
    finally:
        await producer.stop()


async def publisher_run_with_canary(publisher: EventPublisher, canary: CanaryConfig) -> None:
    """`publisher_run_until_signalled`, plus the canary producer while the publisher runs."""
    if not canary.enabled:
        await publisher_run_until_signalled(publisher)
        return
    producing = asyncio.create_task(
        canary_produce_forever(publisher.config, interval=canary.interval, sender=publisher.consumer_id),
        name="canary",
    )
    try:
        await publisher_run_until_signalled(publisher)
    finally:
        await task_stop(producing)
