import pytest

from crm_events.config import broker_redact, kafka_config


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
