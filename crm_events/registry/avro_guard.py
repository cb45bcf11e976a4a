"""Avro schemas whose values a hostile record can make the reader loop on, refused up front.

An Avro array is written as block counts, each followed by that many items. An item that
takes no bytes (null, a record of no fields or only such fields, a fixed of size 0) lets a
record of a few bytes announce a block of 2**62 items: the reader then builds them one by one
and never reaches the end of its input to notice. No bound on the record's size helps, so
such schemas are not decoded at all: their records are delivered undecoded and marked, with
this reason. Maps are safe: every entry carries a key, at least one byte.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

ZERO_WIDTH_ITEMS = (
    "an array of {items} values, which take no bytes: a record could announce more of them than "
    "could ever be read, so this schema's records are not decoded"
)


def zero_width_array(schema: Any, named: Mapping[str, Any]) -> str | None:
    """The item type of an array in `schema` whose items take no bytes, if there is one."""
    return _ArrayFinder(named).find(schema)


class _ArrayFinder:
    def __init__(self, named: Mapping[str, Any]) -> None:
        self.named = named
        self.walked: set[str] = set()

    def find(self, schema: Any) -> str | None:
        if isinstance(schema, str):
            return self._named(schema)
        if isinstance(schema, list):  # a union: each branch
            return next((found for branch in schema if (found := self.find(branch))), None)
        if not isinstance(schema, dict):
            return None
        kind = schema.get("type")
        if kind == "array":
            items = schema.get("items")
            return _type_name(items) if _takes_no_bytes(items, self.named, frozenset()) else self.find(items)
        if kind == "map":
            return self.find(schema.get("values"))
        if kind in ("record", "error"):
            self.walked.add(str(schema.get("name")))
            fields = schema.get("fields", [])
            return next((found for field in fields if (found := self.find(field.get("type")))), None)
        return self.find(kind) if isinstance(kind, (dict, list)) else None

    def _named(self, name: str) -> str | None:
        if name in self.walked or name not in self.named:
            return None
        self.walked.add(name)
        return self.find(self.named[name])


def _takes_no_bytes(schema: Any, named: Mapping[str, Any], seen: frozenset[str]) -> bool:
    if isinstance(schema, str):
        if schema == "null":
            return True
        known = schema in named and schema not in seen
        return known and _takes_no_bytes(named[schema], named, seen | {schema})
    if not isinstance(schema, dict):
        return False  # a union writes its branch's index: at least one byte
    kind = schema.get("type")
    if kind in ("record", "error"):
        inside = seen | {str(schema.get("name"))}
        return all(_takes_no_bytes(field.get("type"), named, inside) for field in schema.get("fields", []))
    if kind == "fixed":
        return schema.get("size") == 0
    if isinstance(kind, (str, dict)) and kind not in ("array", "map"):
        return _takes_no_bytes(kind, named, seen)
    return False


def _type_name(schema: Any) -> str:
    if isinstance(schema, dict):
        return str(schema.get("name") or schema.get("type"))
    return str(schema)
