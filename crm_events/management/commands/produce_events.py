import asyncio
import logging
from typing import Any

from aiokafka.errors import KafkaError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from crm_events.config import kafka_config
from crm_events.ingest.demo import KafkaNotReached, Progress, demo_produce

logger = logging.getLogger(__name__)

KAFKA_FAILED = "Kafka failed while producing to {topic}: {error}"


class Command(BaseCommand):
    help = "Produce realistic demo CRM events (leads, contacts, deals, tickets) into Kafka."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--rate", type=float, default=5.0, help="events per second (default 5)")
        parser.add_argument("--count", type=int, default=0,
                            help="events to send, with a progress line every 5s; 0 = until Ctrl-C (default)")
        parser.add_argument("--topic", help="topic to write to (default: the first served topic)")
        parser.add_argument("--connect-timeout", type=float, default=60.0, metavar="SECONDS",
                            help="seconds to keep trying while Kafka is unreachable; "
                                 "0 = for ever (default 60)")

    def handle(self, *args: object, **options: Any) -> None:
        rate, count, connect_timeout = options["rate"], options["count"], options["connect_timeout"]
        if not rate > 0:
            raise CommandError("--rate must be a positive number of events per second.")
        if count < 0:
            raise CommandError("--count must be 0 (no limit) or a positive number.")
        if not connect_timeout >= 0:
            raise CommandError("--connect-timeout must be 0 (for ever) or a positive number of seconds.")
        config = kafka_config()
        topic = options["topic"] or config.topics[0]
        logger.info("producing demo events to %s at %s/s", topic, rate)
        progress = Progress(topic=topic, count=count)
        try:
            asyncio.run(demo_produce(config, topic=topic, rate=rate, count=count,
                                     connect_timeout=connect_timeout, progress=progress))
        except KafkaNotReached as error:
            raise CommandError(str(error)) from None
        except KafkaError as error:  # Kafka went away mid-way: what was sent is in the summary line
            reason = str(error) or type(error).__name__
            raise CommandError(KAFKA_FAILED.format(topic=topic, error=reason)) from None
        except KeyboardInterrupt:
            logger.info("demo producer stopped")
