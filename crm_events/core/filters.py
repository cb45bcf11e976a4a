"""Server-side event filters: `kind=`, `key=`/`key_base64=`, `partition=` and `where=path:value`.

One `EventFilter` is built per stream and applied identically to live and replayed
events, so a filtered stream resumed from its token is exactly the filtered subset.
Within one parameter the values are alternatives (OR); different parameters, and
several `where=`, must all match (AND).
"""

from __future__ import annotations

import re
from collections.abc import Hashable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from crm_events.core.records import BINARY_FIELD, bytes_encode

MISSING = object()


class PayloadFilter(Protocol):
    """What a stream asks of an event: an `EventFilter`, or one narrowed by a grant."""

    def matches(self, payload: dict[str, Any]) -> bool: ...

# A list index is ASCII digits only: `str.isdigit()` also accepts `²` or `١`, which `int()` refuses
# or reads as another number. More digits than this could never index a list anyway.
_INDEX = re.compile(r"[0-9]{1,18}")
# `str()` of a larger int raises (Python's int-to-text limit); such a number never equals a query value.
_INT_TEXT_LIMIT = 10**4000


def path_indices(path: tuple[str, ...]) -> tuple[int | None, ...]:
    """Each segment as a list index when it is one, else None: decided once, at parse time."""
    return tuple(int(segment) if _INDEX.fullmatch(segment) else None for segment in path)


@dataclass(frozen=True, slots=True)
class FieldMatch:
    """`where=deal.stage:won`: the value at a dotted path equals the given text.

    Which segments can index a JSON array is decided when the filter is built, so
    `matches` never parses text and never raises, whatever the event's value.
    """

    path: tuple[str, ...]
    expected: str
    indices: tuple[int | None, ...] = field(init=False, repr=False, compare=False, default=())

    def __post_init__(self) -> None:
        object.__setattr__(self, "indices", path_indices(self.path))

    def matches(self, value: Any) -> bool:
        return self.text_in(value) == self.expected

    def text_in(self, value: Any) -> str | None:
        """What this path holds in `value`, written as a query would write it (None: nothing)."""
        found = _lookup(value, self.path, self.indices)
        return None if found is MISSING else _scalar_text(found)


def _lookup(value: Any, path: tuple[str, ...], indices: tuple[int | None, ...]) -> Any:
    for segment, index in zip(path, indices, strict=True):
        if isinstance(value, dict):
            value = value.get(segment, MISSING)
        elif isinstance(value, list) and index is not None and index < len(value):
            value = value[index]
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
    if isinstance(value, str):
        return value
    if isinstance(value, int):
        return str(value) if -_INT_TEXT_LIMIT < value < _INT_TEXT_LIMIT else None
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    return None  # objects and arrays never equal a query value


def key_form(key: object) -> Hashable:
    """A payload's key (as `bytes_encode` gives it) as a set member: text as itself, a binary
    key as (BINARY_FIELD, its base64), so that neither can stand for the other."""
    if isinstance(key, dict):
        data = key.get(BINARY_FIELD)
        return (BINARY_FIELD, data if isinstance(data, str) else None)
    return key if isinstance(key, str) else None


def payload_key_form(payload: dict[str, Any]) -> Hashable:
    """The `key_form` of a payload's key. A key decoded with its registry schema (`key_format`)
    matches `key=` when it decoded to text, and nothing else: a decoded object that happens to
    read `{"base64": ...}` is not a binary key."""
    key = payload.get("key")
    if "key_format" in payload:
        return key if isinstance(key, str) else None
    return key_form(key)


def key_form_of_bytes(raw: bytes) -> Hashable:
    """The `key_form` of a record whose key is exactly `raw` (what `key_base64=` asks for)."""
    return key_form(bytes_encode(raw))


@dataclass(frozen=True, slots=True)
class Anchor:
    """One condition without which a filter cannot match, for indexing subscribers by it.

    `kind` says which condition (an `AnchorKind`). `values` are the alternatives of that condition
    (keys, kinds, partitions; for `where`, the one expected text), and `field` the `where`
    path. A filter with no condition at all anchors EVERYONE: it takes every event of its
    topics (canaries only if `canaries`); ALL: every event is a candidate, checked in full;
    NOTHING: no event can match.
    """

    kind: AnchorKind
    values: frozenset[Any] = frozenset()
    field: FieldMatch | None = None
    canaries: bool = False




class AnchorKind(StrEnum):
    """What an `Anchor` lists a filter under (see its docstring)."""

    EVERYONE = "everyone"
    ALL = "all"
    NOTHING = "nothing"
    KEY = "key"
    WHERE = "where"
    KIND = "kind"
    PARTITION = "partition"


def kind_prefixes(event_type: str) -> list[str]:
    """Every `kind=` value that matches `event_type`: itself and each prefix before a dot."""
    return [event_type] + [event_type[:i] for i, char in enumerate(event_type) if char == "."]


@dataclass(frozen=True, slots=True)
class EventFilter:
    kinds: frozenset[str] = frozenset()
    keys: frozenset[Hashable] = frozenset()  # `key_form`s: text keys, and binary ones
    partitions: frozenset[int] = frozenset()
    fields: tuple[FieldMatch, ...] = ()

    @property
    def is_empty(self) -> bool:
        return not (self.kinds or self.keys or self.partitions or self.fields)

    def anchor(self) -> Anchor:
        """The most selective condition this filter has (keys, then a `where`, kinds, partitions)."""
        if self.keys:
            return Anchor(AnchorKind.KEY, self.keys)
        if self.fields:
            return Anchor(AnchorKind.WHERE, frozenset({self.fields[0].expected}), self.fields[0])
        if self.kinds:
            return Anchor(AnchorKind.KIND, self.kinds)
        if self.partitions:
            return Anchor(AnchorKind.PARTITION, self.partitions)
        return Anchor(AnchorKind.ALL)

    def matches(self, payload: dict[str, Any]) -> bool:
        if self.partitions and payload["partition"] not in self.partitions:
            return False
        if self.keys and payload_key_form(payload) not in self.keys:
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


def filters_and(first: EventFilter, second: EventFilter) -> EventFilter | None:
    """The one filter matching exactly the events both match; None when no event can.

    Used to AND a grant's mandatory filter with a client's: within a parameter the values
    are alternatives, so the result keeps those allowed by both (for kinds, the narrower of
    two related ones: `deal` AND `deal.won` is `deal.won`); `where` conditions all apply.
    """
    kinds = _kinds_and(first.kinds, second.kinds)
    keys = _alternatives_and(first.keys, second.keys)
    partitions = _alternatives_and(first.partitions, second.partitions)
    fields = first.fields + tuple(f for f in second.fields if f not in first.fields)
    if kinds is None or keys is None or partitions is None or _fields_conflict(fields):
        return None
    return EventFilter(kinds=kinds, keys=keys, partitions=partitions, fields=fields)


def _alternatives_and(first: frozenset[Any], second: frozenset[Any]) -> frozenset[Any] | None:
    """Values allowed by both (an empty set: no condition); None when none are."""
    if not first or not second:
        return first or second
    return (first & second) or None


def _kinds_and(first: frozenset[str], second: frozenset[str]) -> frozenset[str] | None:
    """The kinds an event type must match to match both sets: of two kinds where one covers the
    other (`deal` covers `deal.won`), the covered one; kinds unrelated to each other match nothing."""
    if not first or not second:
        return first or second
    both = {b if _covers(a, b) else a for a in first for b in second if _covers(a, b) or _covers(b, a)}
    return frozenset(both) or None


def _covers(kind: str, other: str) -> bool:
    """`kind=kind` matches every event `kind=other` does."""
    return other == kind or other.startswith(kind + ".")


def _fields_conflict(fields: tuple[FieldMatch, ...]) -> bool:
    """Two conditions on one path that want different texts: no value equals both."""
    wanted: dict[tuple[str, ...], str] = {}
    return any(wanted.setdefault(f.path, f.expected) != f.expected for f in fields)
