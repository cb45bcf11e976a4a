"""A stand-in for `OffsetLookup` in unit tests: a made-up cluster of logs."""

from aiokafka import TopicPartition


class Kafka:
    """An `OffsetLookup` over a made-up cluster: per partition, its log start and end."""

    def __init__(self, logs: dict[tuple[str, int], tuple[int, int]]) -> None:
        self.logs = logs
        self.asked: list[str] = []

    def _each(self, tps: list[TopicPartition], index: int) -> dict[TopicPartition, int]:
        for tp in tps:  # a partition that does not exist would hang a real consumer: fail here
            assert (tp.topic, tp.partition) in self.logs, f"asked about {tp}, which does not exist"
        return {tp: self.logs[tp.topic, tp.partition][index] for tp in tps}

    async def topic_partitions(self, topics) -> dict[str, set[int]]:
        self.asked.append("describe")
        return {t: {p for (topic, p) in self.logs if topic == t} for t in topics}

    async def beginning_offsets(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        self.asked.append("beginning")
        return self._each(tps, 0)

    async def end_offsets(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        self.asked.append("end")
        return self._each(tps, 1)
