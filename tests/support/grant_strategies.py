"""Hypothesis strategies over the stream's filter language: client filters, grants and events
drawn from one small vocabulary, so that filters, grants and events meet often."""

from __future__ import annotations

import base64
from typing import Any

from hypothesis import strategies as st

from crm_events.core.canary import CANARY_HEADER, CANARY_TYPE
from crm_events.core.filters import EventFilter, FieldMatch, key_form_of_bytes
from tests.support.payloads import domain_payload

TOPICS = ("a", "b", "c")
PARTITIONS = (0, 1, 2)
KEYS = ("k1", "k2", "k3")
BINARY = (b"\xff", b"\xfek")  # keys that are not UTF-8
# Binary keys as events carry them (UTF-8 keys are carried as text); and as `key_base64=` names
# them, with `azE` for the bytes of the text key `k1`, which it matches.
BINARY_KEYS = tuple({"base64": base64.b64encode(raw).decode()} for raw in BINARY)
BINARY_TEXTS = (*(base64.urlsafe_b64encode(raw).decode().rstrip("=") for raw in BINARY), "azE")
KINDS = ("deal", "deal.won", "deal.won.big", "ticket", "ticket.opened")
PATHS = (("tenant_id",), ("deal", "stage"), ("items", "0", "sku"))
TEXTS = ("acme", "beta", "won", "7", "true", "null")


def small_sets(values: tuple[Any, ...], max_size: int = 2) -> st.SearchStrategy[frozenset[Any]]:
    return st.frozensets(st.sampled_from(values), max_size=max_size)


field_matches = st.builds(FieldMatch, path=st.sampled_from(PATHS), expected=st.sampled_from(TEXTS))
client_filters = st.builds(
    EventFilter, kinds=small_sets(KINDS),
    keys=small_sets((*KEYS, *(key_form_of_bytes(raw) for raw in BINARY))),
    partitions=small_sets(PARTITIONS), fields=st.lists(field_matches, max_size=2).map(tuple),
)
wheres = st.builds(
    lambda path, text: ".".join(path) + ":" + text, st.sampled_from(PATHS), st.sampled_from(TEXTS))


def _values(values: st.SearchStrategy[str]) -> st.SearchStrategy[list[str]]:
    return st.lists(values, min_size=1, max_size=2, unique=True)


GRANT_VALUES = {
    "topic": _values(st.sampled_from(TOPICS)), "kind": _values(st.sampled_from(KINDS)),
    "key": _values(st.sampled_from(KEYS)), "key_base64": _values(st.sampled_from(BINARY_TEXTS)),
    "partition": _values(st.sampled_from([str(p) for p in PARTITIONS] + ["01"])), "where": _values(wheres),
}


def grants_of(most: int) -> st.SearchStrategy[dict[str, list[str]]]:
    """Grant objects as a token or the admin carries them: 1 to `most` parameters, each a non-empty list."""
    names = st.sets(st.sampled_from(sorted(GRANT_VALUES)), min_size=1, max_size=most)
    return names.flatmap(lambda chosen: st.fixed_dictionaries({name: GRANT_VALUES[name] for name in chosen}))


grant_objects = grants_of(len(GRANT_VALUES))

scalars = st.sampled_from(["acme", "beta", "won", "lost", 7, 7.0, True, None, [], {}])
values = st.fixed_dictionaries({}, optional={
    "tenant_id": scalars, "deal": st.fixed_dictionaries({}, optional={"stage": scalars}),
    "items": st.lists(st.fixed_dictionaries({}, optional={"sku": scalars}), max_size=2),
}) | scalars


@st.composite
def events(draw: st.DrawFn, topics: tuple[str, ...] = TOPICS) -> dict[str, Any]:
    canary = draw(st.booleans()) and draw(st.booleans())
    event_type = CANARY_TYPE if canary else draw(st.none() | st.sampled_from((*KINDS, "deal.lost", "dealer")))
    return domain_payload(
        topic=draw(st.sampled_from(topics)), partition=draw(st.sampled_from(PARTITIONS)),
        key=draw(st.none() | st.sampled_from(KEYS + BINARY_KEYS)), type_=event_type, value=draw(values),
        headers={CANARY_HEADER: "1"} if canary else {},
    )


def grant_admits(grant: dict[str, list[str]], payload: dict[str, Any]) -> bool:
    """The grant's meaning, written out from the words of docs/security.md rather than from the code under
    test: every parameter it names must hold (within one, any value; every `where`)."""
    if "topic" in grant and payload["topic"] not in grant["topic"]:
        return False
    if "kind" in grant and not any(
        payload["type"] is not None and (payload["type"] == k or payload["type"].startswith(k + "."))
        for k in grant["kind"]
    ):
        return False
    if ("key" in grant or "key_base64" in grant) and not _key_admitted(grant, payload["key"]):
        return False
    if "partition" in grant and payload["partition"] not in {int(p) for p in grant["partition"]}:
        return False
    return all(_where_holds(text, payload["value"]) for text in grant.get("where", ()))


def _key_admitted(grant: dict[str, list[str]], key: object) -> bool:
    """`key=` names a key's UTF-8 bytes, `key_base64=` its bytes: a record's key is those bytes,
    carried as text when they are UTF-8 and as {"base64": ...} when not."""
    if isinstance(key, str):
        raw = key.encode()
    elif isinstance(key, dict):
        raw = base64.b64decode(key["base64"])
    else:
        return False
    named = {text.encode() for text in grant.get("key", ())}
    named |= {base64.urlsafe_b64decode(t + "=" * (-len(t) % 4)) for t in grant.get("key_base64", ())}
    return raw in named


def _where_holds(text: str, value: Any) -> bool:
    path, _, expected = text.partition(":")
    for segment in path.split("."):
        if isinstance(value, dict) and segment in value:
            value = value[segment]
        elif isinstance(value, list) and segment.isdigit() and int(segment) < len(value):
            value = value[int(segment)]
        else:
            return False
    return _written(value) == expected


def _written(value: Any) -> str | None:
    """A JSON scalar as a query writes it; objects and arrays equal no query text."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, str):
        return value
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    return None
