"""Server-side event filters: `kind=`, `key=`, `partition=` and `where=path:value`.

One `EventFilter` is built per stream and applied identically to live and replayed
events, so a filtered stream resumed from its token is exactly the filtered subset.
Within one parameter the values are alternatives (OR); different parameters, and
several `where=`, must all match (AND).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

MISSING = object()


@dataclass(frozen=True, slots=True)
class FieldMatch:
    """`where=deal.stage:won`: the value at a dotted path equals the given text."""

    path: tuple[str, ...]
    expected: str

    def matches(self, value: Any) -> bool:
        found = _lookup(value, self.path)
        if found is MISSING:
            return False
        return _scalar_text(found) == self.expected


def _lookup(value: Any, path: tuple[str, ...]) -> Any:
    for segment in path:
        if isinstance(value, dict):
            value = value.get(segment, MISSING)
        elif isinstance(value, list) and segment.isdigit() and int(segment) < len(value):
            value = value[int(segment)]
        else:
            return MISSING
        if value is MISSING:
            return MISSING
    return value


def _scalar_text(value: Any) -> str | None:
    """How a JSON scalar is written in a query: `true`, `null`, `42`, `won`."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, int | str):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    return None  # objects and arrays never equal a query value


@dataclass(frozen=True, slots=True)
class EventFilter:
    kinds: frozenset[str] = frozenset()
    keys: frozenset[str] = frozenset()
    partitions: frozenset[int] = frozenset()
    fields: tuple[FieldMatch, ...] = ()

    @property
    def is_empty(self) -> bool:
        return not (self.kinds or self.keys or self.partitions or self.fields)

    def matches(self, payload: dict[str, Any]) -> bool:
        if self.partitions and payload["partition"] not in self.partitions:
            return False
        if self.keys and payload.get("key") not in self.keys:
            return False
        if self.kinds and not kind_matches(payload.get("type"), self.kinds):
            return False
        return all(field.matches(payload.get("value")) for field in self.fields)


def kind_matches(event_type: str | None, kinds: frozenset[str]) -> bool:
    """`kind=deal` matches `deal` and `deal.won`; `kind=deal.won` only `deal.won`.

    No kinds match nothing here: `EventFilter` skips the check when it has none.
    """
    if event_type is None:
        return False
    if event_type in kinds:
        return True
    return any(event_type.startswith(kind + ".") for kind in kinds)
