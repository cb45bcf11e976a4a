import dataclasses

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from crm_events.config import broker_redact, kafka_config
from crm_events.core.messages import BATCH_MAX_BYTES
from crm_events.kafka.clients import (
    FETCH_MAX_WAIT_MS,
    admin_create,
    group_consumer_create,
    producer_create,
    reader_create,
)

SCHEMES = ["", "sasl://", "SASL_SSL://", "sasl_plaintext://", "redis://", "rediss://", "postgres://", "http://"]
# Any printable text without `/` or whitespace (which end a URL's authority).
printable = st.characters(
    blacklist_categories=("Cc", "Cf", "Cs", "Co", "Cn", "Zs", "Zl", "Zp"), blacklist_characters="/"
)
users = st.text(printable, max_size=12)
passwords = st.text(printable, min_size=4, max_size=20)


@pytest.mark.parametrize(
    ("broker", "shown"),
    [
        ("kafka:9092", "kafka:9092"),
        ("user:secret@kafka:9092", "***@kafka:9092"),
        ("SASL_SSL://user:p%40ss@kafka:9093", "SASL_SSL://***@kafka:9093"),
        ("sasl://user:p@ss@host", "sasl://***@host"),  # showed `ss@host`
        ("user:p@ss@kafka:9092", "***@kafka:9092"),
        ("kafka:9092/path@x", "kafka:9092/path@x"),
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


@pytest.mark.parametrize("wait_ms", [0, 1, 50, 100])
async def test_the_group_consumer_lets_kafka_hold_a_fetch_for_a_full_batch_as_long_as_configured(wait_ms):
    consumer = group_consumer_create(dataclasses.replace(kafka_config(), batch_wait_ms=wait_ms))
    try:
        if wait_ms:
            assert (consumer._fetch_max_wait_ms, consumer._fetch_min_bytes) == (wait_ms, BATCH_MAX_BYTES)
        else:
            assert (consumer._fetch_max_wait_ms, consumer._fetch_min_bytes) == (FETCH_MAX_WAIT_MS, 1)
    finally:
        await consumer.stop()


def test_the_batch_wait_defaults_to_50_ms():
    assert kafka_config().batch_wait_ms == 50


@example(scheme="sasl://", user="user", password="p@ss")
@example(scheme="", user="u@", password="@@@@")
@given(scheme=st.sampled_from(SCHEMES), user=users, password=passwords)
def test_a_broker_address_never_shows_its_password(scheme, user, password):
    masked = broker_redact(f"{scheme}{user}:{password}@host:9092")
    assert masked == f"{scheme}***@host:9092"
    assert password not in masked.replace("host:9092", "").replace(scheme, "")
