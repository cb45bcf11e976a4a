import pytest

from crm_events.config import broker_redact, kafka_config
from crm_events.kafka_clients import admin_create, group_consumer_create, producer_create, reader_create


@pytest.mark.parametrize(
    ("broker", "shown"),
    [
        ("kafka:9092", "kafka:9092"),
        ("user:secret@kafka:9092", "***@kafka:9092"),
        ("SASL_SSL://user:p%40ss@kafka:9093", "SASL_SSL://***@kafka:9093"),
    ],
)
def test_credentials_are_redacted(broker, shown):
    assert broker_redact(broker) == shown


def test_config_follows_overridden_settings(settings):
    settings.KAFKA_TOPICS = ["a", "b", "a"]
    assert kafka_config().topics == ("a", "b")


async def test_every_kafka_client_refreshes_metadata_at_the_configured_age_and_reads_committed():
    config = kafka_config()
    assert config.metadata_max_age == 30.0 and config.metadata_max_age_ms == 30_000
    consumers = [group_consumer_create(config), reader_create(config)]
    producer, admin = producer_create(config), admin_create(config)
    try:
        for consumer in consumers:
            assert consumer._client._metadata_max_age_ms == 30_000
            assert consumer._isolation_level == "read_committed"
        assert producer.client._metadata_max_age_ms == admin._client._metadata_max_age_ms == 30_000
    finally:
        for consumer in consumers:
            await consumer.stop()
        await producer.stop()
        await admin.close()
