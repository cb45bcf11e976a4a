import asyncio
import logging
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from crm_events.config import kafka_config
from crm_events.ingest.demo import demo_produce

logger = logging.getLogger(__name__)


class Command(BaseCommand):
    help = "Produce realistic demo CRM events (leads, contacts, deals, tickets) into Kafka."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--rate", type=float, default=5.0, help="events per second (default 5)")
        parser.add_argument("--count", type=int, default=0, help="events to send; 0 = until Ctrl-C")
        parser.add_argument("--topic", help="topic to write to (default: the first served topic)")

    def handle(self, *args: object, **options: Any) -> None:
        rate, count = options["rate"], options["count"]
        if rate <= 0:
            raise CommandError("--rate must be a positive number of events per second.")
        if count < 0:
            raise CommandError("--count must be 0 (no limit) or a positive number.")
        config = kafka_config()
        topic = options["topic"] or config.topics[0]
        logger.info("producing demo events to %s at %s/s", topic, rate)
        try:
            asyncio.run(demo_produce(config, topic=topic, rate=rate, count=count))
        except KeyboardInterrupt:
            logger.info("demo producer stopped")
