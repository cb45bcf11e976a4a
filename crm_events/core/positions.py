"""Where a stream stands: per (topic, partition), the offset of the next record it is owed."""

from __future__ import annotations

from collections.abc import Mapping

Position = tuple[str, int]


def positions_text(positions: Mapping[Position, int]) -> str:
    """`topic:partition@offset, ...` for log lines."""
    return ", ".join(f"{topic}:{part}@{offset}" for (topic, part), offset in sorted(positions.items()))
