"""What a stream's resume id stands for, read the way a web process reads it: a version 1 id
spells its positions out, a later one is resolved through the real positions log (a log point,
a point between two of them, or one amended)."""

from __future__ import annotations

from collections.abc import Iterable

from crm_events.config import KafkaConfig
from crm_events.core.log_tokens import resume_id_decode
from crm_events.core.positions import Position
from crm_events.kafka.position_log import PositionLogReader


async def id_positions(
    token: str, partitions: Iterable[Position], *, env: dict[str, str], served: Iterable[str] = ()
) -> dict[Position, int]:
    """The offsets `token` stands for in `partitions`, for the stack whose environment is `env`
    (a version 1 id may name more of the stream's topics: `served`)."""
    partitions = list(partitions)
    topics = tuple(dict.fromkeys([*(topic for topic, _ in partitions), *served]))
    log_topic = f"{env['KAFKA_GROUP']}.positions"
    decoded = resume_id_decode(token, topics, log_topic=log_topic)
    if isinstance(decoded, dict):
        return {position: decoded.get(position, 0) for position in partitions}
    config = KafkaConfig(
        brokers=(env["KAFKA_BROKERS"],), topics=topics, group=env["KAFKA_GROUP"], offset_reset="earliest",
        topic_partitions=1, topic_replication=1, retry_backoff_max=1.0, batch_max_records=1,
        positions_topic=log_topic,
    )
    reader = PositionLogReader(config)
    try:
        state = await reader.point_state(decoded, partitions)  # as a web process resolves it
    finally:
        await reader.close()
    assert state is not None, f"the positions log does not resolve {decoded}"
    return state
