"""Grants: mandatory filters bound to credentials, in the stream's own filter language.

A grant is an object whose keys are stream parameters (`topic`, `kind`, `key`, `key_base64`,
`partition`, `where`) and whose values are lists of the strings the query takes, e.g.
`{"where": ["tenant_id:acme"], "kind": ["deal"]}`. It is AND-ed with whatever the client asks,
live, in replay and on resume; within one parameter the values keep their query meaning (OR
for `topic`, `kind`, `key`, `key_base64`, `partition`; AND for `where`).

`grant_parse` fails closed: anything but an object of known parameters with non-empty lists of
non-empty strings, each valid as its query parameter, raises `GrantMalformed`. An empty object
and an empty list grant nothing, so they are refused too, never read as "no restriction".
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from crm_events.core.filter_query import (
    FILTER_PARAMETERS,
    MAX_VALUE_CHARS,
    MAX_VALUES,
    FilterValueError,
    event_filter_parse,
)
from crm_events.core.filters import EventFilter
from crm_events.exceptions import GrantMalformed

GRANT_PARAMETERS = ("topic", *FILTER_PARAMETERS)

GRANT_NOT_OBJECT = "a grant must be an object whose keys are among: " + ", ".join(GRANT_PARAMETERS)
GRANT_EMPTY = "an empty grant grants nothing"
GRANT_PARAMETER_UNKNOWN = "unknown grant parameter {name!r}; allowed: " + ", ".join(GRANT_PARAMETERS)
GRANT_VALUES_INVALID = (
    "grant parameter {name!r} must be a non-empty list of at most {most} non-empty strings "
    "of at most {longest} characters"
)
GRANT_VALUE_INVALID = "grant parameter {name!r}: {reason}"


@dataclass(frozen=True, slots=True)
class StreamGrant:
    """One grant's values, as the query strings it was given; empty: no restriction on that parameter.

    `event_filter` is the filter its `kind`, `key`, `key_base64`, `partition` and `where` values
    ask for; `topics` limits the topics like a topics claim does. Build it with `grant_parse`.
    """

    topics: frozenset[str] = frozenset()
    kinds: frozenset[str] = frozenset()
    keys: frozenset[str] = frozenset()
    keys_base64: frozenset[str] = frozenset()
    partitions: frozenset[str] = frozenset()
    wheres: tuple[str, ...] = ()
    event_filter: EventFilter = field(init=False, repr=False, compare=False, default=EventFilter())

    def __post_init__(self) -> None:
        values = {name: sorted(self.values_of(name)) for name in FILTER_PARAMETERS}
        values["where"] = list(self.wheres)  # in their order: the first is what the hub indexes by
        object.__setattr__(self, "event_filter", event_filter_parse(values))

    def values_of(self, name: str) -> Iterable[str]:
        """The query strings given for one grant parameter."""
        return {
            "topic": self.topics, "kind": self.kinds, "key": self.keys, "key_base64": self.keys_base64,
            "partition": self.partitions, "where": self.wheres,
        }[name]

    def as_object(self) -> dict[str, list[str]]:
        """The grant as `grant_parse` takes it (and as audit lines show it): only parameters it limits."""
        parts = {name: self.values_of(name) for name in GRANT_PARAMETERS}
        return {name: list(v) if name == "where" else sorted(v) for name, v in parts.items() if v}

    def topics_within(self, allowed: frozenset[str] | None) -> frozenset[str] | None:
        """The topics readable under both this grant and `allowed` (None: no limit from either)."""
        if not self.topics:
            return allowed
        return self.topics if allowed is None else self.topics & allowed


def grant_parse(value: object) -> StreamGrant:
    """The grant `value` (a decoded JSON object) states; `GrantMalformed` for anything else."""
    if not isinstance(value, Mapping):
        raise GrantMalformed(GRANT_NOT_OBJECT)
    if not value:
        raise GrantMalformed(GRANT_EMPTY)
    values = {name: _values(name, value[name]) for name in value}
    try:
        return StreamGrant(
            topics=frozenset(values.get("topic", ())), kinds=frozenset(values.get("kind", ())),
            keys=frozenset(values.get("key", ())), keys_base64=frozenset(values.get("key_base64", ())),
            partitions=frozenset(values.get("partition", ())),
            wheres=tuple(dict.fromkeys(values.get("where", ()))),
        )
    except FilterValueError as error:
        message = GRANT_VALUE_INVALID.format(name=error.parameter, reason=error)
        raise GrantMalformed(message, parameter=error.parameter) from None


def _values(name: object, values: object) -> list[str]:
    if not isinstance(name, str) or name not in GRANT_PARAMETERS:
        raise GrantMalformed(GRANT_PARAMETER_UNKNOWN.format(name=name))
    if (
        not isinstance(values, list) or not values or len(values) > MAX_VALUES
        or not all(isinstance(v, str) and 0 < len(v) <= MAX_VALUE_CHARS for v in values)
    ):
        message = GRANT_VALUES_INVALID.format(name=name, most=MAX_VALUES, longest=MAX_VALUE_CHARS)
        raise GrantMalformed(message, parameter=name)
    return values
