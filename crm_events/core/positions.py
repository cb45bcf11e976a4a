"""Where a stream stands: per (topic, partition), the offset of the next record it is owed."""

from __future__ import annotations

from collections.abc import Mapping

Position = tuple[str, int]

# Kafka's own bounds: partitions are int32, offsets int64.
MAX_PARTITION = (1 << 31) - 1
MAX_OFFSET = (1 << 63) - 1


def positions_text(positions: Mapping[Position, int]) -> str:
    """`topic:partition@offset, ...` for log lines."""
    return ", ".join(f"{topic}:{part}@{offset}" for (topic, part), offset in sorted(positions.items()))
