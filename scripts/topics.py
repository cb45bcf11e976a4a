"""Creating a Kafka topic, for the tests and the benchmark (consume_events never creates one)."""

from __future__ import annotations

from aiokafka.admin import AIOKafkaAdminClient, NewTopic


async def topic_create(
    bootstrap: str, name: str, partitions: int, replication: int = 1, configs: dict[str, str] | None = None
) -> None:
    """Create `name` with `partitions` partitions on the cluster at `bootstrap`; `configs` are
    topic-level settings (`max.message.bytes`, say)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, partitions, replication, topic_configs=configs or {})])
    finally:
        await admin.close()
