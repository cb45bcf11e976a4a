"""Building the Kafka clients the service uses, and making sure its topics exist.

Every Kafka client the service creates (group consumer, producers, the dead-letter and
canary producers, admin, the readers that replay history and look offsets up, the
positions log) is built from one `KafkaConfig` here, so connection and security settings
(TLS files and key password, SASL PLAIN/SCRAM, OAUTHBEARER tokens, MSK IAM) are applied in
one place: `security_options`.

Every consumer reads committed data only (`read_committed`): records of aborted
transactions never reach a client, and a transaction still open holds every reader
at the partition's last stable offset (LSO) until it ends. On such a consumer
`end_offsets()` is the LSO too (aiokafka sends ListOffsets with the consumer's
isolation level), so the live edge the hub starts from is the LSO, never the high
watermark. Offsets that hold no record a client can see (transaction markers,
aborted records, compacted-away records) are holes, not losses.
"""

from __future__ import annotations

import logging
from functools import cache
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.abc import AbstractTokenProvider
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError, for_code
from aiokafka.helpers import create_ssl_context

from crm_events.config import KafkaConfig, KafkaSecurity
from crm_events.core.messages import BATCH_MAX_BYTES
from crm_events.kafka.tokens import ClientCredentialsTokenProvider, MskIamTokenProvider

logger = logging.getLogger(__name__)

ISOLATION_LEVEL = "read_committed"
# aiokafka's default long poll: an idle consumer asks Kafka twice a second.
FETCH_MAX_WAIT_MS = 500


def connection_options(config: KafkaConfig) -> dict[str, Any]:
    """Brokers and security options shared by every Kafka client of the service.

    Raises `ssl.SSLError` or `OSError` for unusable certificate files, which
    `consume_events` checks once at start.
    """
    return {"bootstrap_servers": config.bootstrap_servers, **security_options(config.security)}


def security_options(security: KafkaSecurity) -> dict[str, Any]:
    options: dict[str, Any] = {"security_protocol": security.protocol}
    if security.uses_ssl:
        options["ssl_context"] = create_ssl_context(
            cafile=security.ssl_cafile or None,
            certfile=security.ssl_certfile or None,
            keyfile=security.ssl_keyfile or None,
            password=security.ssl_key_password or None,
        )
    if security.uses_sasl and security.sasl_mechanism in ("OAUTHBEARER", "AWS_MSK_IAM"):
        # MSK IAM is OAUTHBEARER on the wire, with a signed URL as the token.
        options.update(sasl_mechanism="OAUTHBEARER", sasl_oauth_token_provider=token_provider(security))
    elif security.uses_sasl:
        options.update(
            sasl_mechanism=security.sasl_mechanism,
            sasl_plain_username=security.sasl_username,
            sasl_plain_password=security.sasl_password,
        )
    return options


@cache
def token_provider(security: KafkaSecurity) -> AbstractTokenProvider:
    """The process's one token source for these settings: every client and connection shares its
    token, so a process fetches one token per lifetime, not one per connection."""
    if security.sasl_mechanism == "AWS_MSK_IAM":
        return MskIamTokenProvider(security.aws_region)
    if security.oauth is None:
        raise ValueError("OAUTHBEARER needs the OAuth client settings (KAFKA_OAUTH_*)")
    return ClientCredentialsTokenProvider(security.oauth)


def client_options(config: KafkaConfig) -> dict[str, Any]:
    """`connection_options` plus the metadata refresh period, which decides how soon a
    client notices partitions added to a topic (aiokafka's default is 5 minutes)."""
    return {**connection_options(config), "metadata_max_age_ms": config.metadata_max_age_ms}


def group_consumer_create(config: KafkaConfig) -> AIOKafkaConsumer:
    """The consumer-group member: commits by hand, only after publishing. A metadata refresh
    that shows more partitions makes it rejoin the group, so new partitions get an owner.

    Kafka holds its fetches up to `batch_wait_ms` for a layer message's worth of records: a poll
    costs the publisher the same round trips whatever it holds, so fewer, fuller polls cost less
    per record. Without a wait, a fetch is answered as soon as any record is there."""
    waiting = config.batch_wait_ms > 0
    return AIOKafkaConsumer(
        group_id=config.group,
        enable_auto_commit=False,
        auto_offset_reset=config.offset_reset,
        isolation_level=ISOLATION_LEVEL,
        fetch_max_wait_ms=config.batch_wait_ms if waiting else FETCH_MAX_WAIT_MS,
        fetch_min_bytes=BATCH_MAX_BYTES if waiting else 1,
        **client_options(config),
    )


def reader_create(config: KafkaConfig) -> AIOKafkaConsumer:
    """A group-less reader for offset look-ups and replays: it assigns and seeks itself."""
    return AIOKafkaConsumer(
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level=ISOLATION_LEVEL,
        **client_options(config),
    )


def producer_create(config: KafkaConfig, *, linger_ms: int = 5) -> AIOKafkaProducer:
    return AIOKafkaProducer(acks="all", linger_ms=linger_ms, **client_options(config))


def admin_create(config: KafkaConfig) -> AIOKafkaAdminClient:
    return AIOKafkaAdminClient(**client_options(config))


async def kafka_prepare(config: KafkaConfig) -> str:
    """Create the missing topics (the served ones, the positions log, and the dead-letter topic
    when set);
    return the Kafka cluster's id, which names the source of our layer messages."""
    admin = admin_create(config)
    await admin.start()
    try:
        wanted = [*config.topics, *([config.dead_letter_topic] if config.dead_letter_topic else [])]
        existing = set(await admin.list_topics())
        missing = [topic for topic in wanted if topic not in existing]
        if missing:
            await _topics_create(admin, config, missing)
        if config.positions_topic not in existing:
            # One partition: its offsets number the batches of every consumer of the group.
            await _topics_create(admin, config, [config.positions_topic], partitions=1)
        return str((await admin.describe_cluster()).get("cluster_id") or "")
    finally:
        await admin.close()


async def _topics_create(
    admin: AIOKafkaAdminClient, config: KafkaConfig, names: list[str], *, partitions: int = 0
) -> None:
    count = partitions or config.topic_partitions
    new_topics = [NewTopic(name, count, config.topic_replication) for name in names]
    response = await admin.create_topics(new_topics)
    for topic, error_code, *_ in response.topic_errors:
        error = for_code(error_code) if error_code else None
        # Another consumer may create it between our list and our create: that is fine.
        if error is not None and error is not TopicAlreadyExistsError:
            raise error(f"could not create topic {topic}")
    logger.info("created topics %s with %s partitions", names, count)
