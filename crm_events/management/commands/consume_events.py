import asyncio
import logging
import ssl

from channels.layers import InMemoryChannelLayer, get_channel_layer
from django.core.management.base import BaseCommand, CommandError

from crm_events.config import (
    CONFIG_ERROR_EXIT,
    MetricsConfig,
    canary_config,
    kafka_config,
    metrics_config,
    readiness_config,
)
from crm_events.ingest.canary import publisher_run_with_canary
from crm_events.ingest.liveness import LoopProgress
from crm_events.ingest.metrics_server import consumer_http_serve
from crm_events.ingest.publisher import EventPublisher
from crm_events.ingest.status import with_status
from crm_events.kafka.clients import connection_options

logger = logging.getLogger(__name__)

IN_MEMORY_LAYER_ERROR = (
    "The channel layer is in-memory, which cannot reach the web processes: "
    "configure the Redis layer (REDIS_URL)."
)
KAFKA_TLS_ERROR = (
    "The Kafka TLS files (KAFKA_SSL_CAFILE, KAFKA_SSL_CERTFILE, KAFKA_SSL_KEYFILE) are unusable, "
    "or KAFKA_SSL_KEY_PASSWORD does not open the key: {}"
)
METRICS_PORT_ERROR = (
    "Cannot serve consumer metrics on {address} port {port} "
    "(CONSUMER_METRICS_ADDRESS, CONSUMER_METRICS_PORT): {error}"
)


class Command(BaseCommand):
    help = "Consume the CRM topics from Kafka and publish every record to the web processes."

    def handle(self, *args: object, **options: object) -> None:
        layer = get_channel_layer()
        if layer is None or isinstance(layer, InMemoryChannelLayer):
            raise CommandError(IN_MEMORY_LAYER_ERROR, returncode=CONFIG_ERROR_EXIT)
        config = kafka_config()
        try:
            connection_options(config)
        except (ssl.SSLError, OSError) as error:
            raise CommandError(KAFKA_TLS_ERROR.format(error), returncode=CONFIG_ERROR_EXIT) from None
        canary = canary_config()
        logger.info(
            "consume_events starting: brokers=%s security=%s topics=%s group=%s offset_reset=%s "
            "layer=%s canary=%s",
            ",".join(config.brokers_redacted), config.security.describe(), ",".join(config.topics),
            config.group, config.offset_reset, type(layer).__name__,
            f"every {canary.interval:g}s" if canary.enabled else "off",
        )
        publisher = EventPublisher(
            config=config,
            layer=layer,
            heartbeat_interval=readiness_config().consumer_heartbeat_interval,
            stall_threshold=readiness_config().publish_stall_seconds,
        )
        self._metrics_serve(metrics_config(), publisher.progress)
        status_interval = readiness_config().consumer_status_interval
        asyncio.run(with_status(publisher_run_with_canary(publisher, canary), publisher, status_interval))

    def _metrics_serve(self, config: MetricsConfig, progress: LoopProgress) -> None:
        """Serve this process's metrics and /livez on the configured address only (no auth)."""
        if not config.consumer_port:
            return
        try:
            server = consumer_http_serve(
                config.consumer_address, config.consumer_port, progress, config.consumer_liveness_max_age
            )
        except OSError as error:
            message = METRICS_PORT_ERROR.format(
                address=config.consumer_address, port=config.consumer_port, error=error
            )
            raise CommandError(message) from None
        # An AF_INET(6) server's address: the host is text (typeshed allows bytes for AF_UNIX).
        host, port = str(server.server_address[0]), server.server_address[1]
        logger.info("consumer metrics on http://%s:%s/metrics (liveness: /livez)",
                    f"[{host}]" if ":" in host else host, port)
