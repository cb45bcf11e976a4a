"""`manage.py topics_create`: create the missing served topics (and the dead-letter topic), then exit.

`consume_events` does the same when it starts. Deployments run this once before anything
produces (docker/init.sh), so that no broker with auto-creation on can create a topic with its
own default partition count first.
"""

import asyncio
import logging
import time
from typing import Any

from aiokafka.errors import KafkaError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from crm_events.config import KafkaConfig, kafka_config
from crm_events.kafka.clients import kafka_prepare

logger = logging.getLogger(__name__)

RETRY_SECONDS = 2.0
KAFKA_UNREACHABLE = "Kafka ({brokers}) did not let the topics be created within {timeout:g}s: {error}"


class Command(BaseCommand):
    help = "Create the missing served topics with KAFKA_TOPIC_PARTITIONS partitions, then exit."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--timeout", type=float, default=120.0,
                            help="seconds to keep trying while Kafka is unreachable (default 120)")

    def handle(self, *args: object, **options: Any) -> None:
        config = kafka_config()
        timeout = float(options["timeout"])
        try:
            asyncio.run(topics_prepare(config, timeout=timeout))
        except (KafkaError, OSError) as error:
            brokers = ",".join(config.brokers_redacted)
            message = KAFKA_UNREACHABLE.format(brokers=brokers, timeout=timeout, error=error)
            raise CommandError(message) from None
        logger.info("topics ready: %s", ",".join(config.topics))


async def topics_prepare(config: KafkaConfig, *, timeout: float) -> None:
    """`kafka_prepare`, tried again every few seconds until `timeout` while Kafka is away."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            await kafka_prepare(config)
            return
        except (KafkaError, OSError) as error:
            if time.monotonic() + RETRY_SECONDS > deadline:
                raise
            logger.warning("Kafka not ready for topic creation (%s); trying again", error)
            await asyncio.sleep(RETRY_SECONDS)
