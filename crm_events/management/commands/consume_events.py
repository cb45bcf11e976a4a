import asyncio
import logging

from channels.layers import InMemoryChannelLayer, get_channel_layer
from django.core.management.base import BaseCommand, CommandError

from crm_events.config import kafka_config, readiness_config
from crm_events.publisher import EventPublisher, publisher_run_until_signalled

logger = logging.getLogger(__name__)

IN_MEMORY_LAYER_ERROR = (
    "The channel layer is in-memory, which cannot reach the web processes: "
    "configure the Redis layer (REDIS_URL)."
)


class Command(BaseCommand):
    help = "Consume the CRM topics from Kafka and publish every record to the web processes."

    def handle(self, *args: object, **options: object) -> None:
        layer = get_channel_layer()
        if layer is None or isinstance(layer, InMemoryChannelLayer):
            raise CommandError(IN_MEMORY_LAYER_ERROR)
        config = kafka_config()
        logger.info(
            "consume_events starting: brokers=%s topics=%s group=%s offset_reset=%s layer=%s",
            ",".join(config.brokers_redacted), ",".join(config.topics), config.group,
            config.offset_reset, type(layer).__name__,
        )
        publisher = EventPublisher(
            config=config,
            layer=layer,
            heartbeat_interval=readiness_config().consumer_heartbeat_interval,
        )
        asyncio.run(publisher_run_until_signalled(publisher))
