"""The stream's filter language: the values of `kind=`, `key=`, `key_base64=`, `partition=`
and `where=` parsed into an `EventFilter`.

Shared by the stream request (its query string) and by grants (a credential's mandatory
filters), so a grant means exactly what the same query would mean and is checked the
same way. A value that is not what its parameter takes raises `FilterValueError`, whose
message is safe to show and whose `parameter` names the parameter.
"""

from __future__ import annotations

import binascii
import re
from collections.abc import Hashable, Mapping, Sequence

from crm_events.core.filters import EventFilter, FieldMatch, key_form_of_bytes

FILTER_PARAMETERS = ("kind", "key", "key_base64", "partition", "where")
# How many values one parameter may have, and how long one may be: a query's, a grant's.
MAX_VALUES = 100
MAX_VALUE_CHARS = 1000
# Kafka's own bound: partitions are int32.
PARTITION_MAX = 2**31 - 1
# ASCII digits only: `str.isdigit()` also accepts `²` (which `int()` refuses) and `١` (read as 1).
ASCII_INTEGER = re.compile(r"[0-9]+")
# Either base64 alphabet, padding optional: a `+` sent unescaped in a query arrives as a space,
# so URL-safe base64 (`-`, `_`) is what a URL should carry.
_BASE64_ANY = re.compile(r"(?:[A-Za-z0-9+/]+|[A-Za-z0-9_-]+)={0,2}")

INTEGER_INVALID = "{name} must be a whole number from 0 to {maximum} in ASCII digits, got {text!r}"
KEY_BASE64_INVALID = (
    "key_base64 must be base64 (standard, or URL-safe with - and _; padding optional), got {text!r}"
)
WHERE_INVALID = "where must look like path.to.field:value, got {text!r}"


class FilterValueError(ValueError):
    """A filter value its parameter does not take; `parameter` names the parameter."""

    def __init__(self, message: str, *, parameter: str) -> None:
        super().__init__(message)
        self.parameter = parameter


def digits_too_long(digits: str, maximum: int) -> bool:
    """More significant digits than `maximum` has: out of range, and never handed to `int()`."""
    return len(digits.lstrip("0")) > len(str(maximum))


def integer_parse(text: str, *, name: str, maximum: int, parameter: str) -> int:
    """An integer in [0, maximum] written in ASCII digits; else `FilterValueError` naming `parameter`."""
    if not ASCII_INTEGER.fullmatch(text) or digits_too_long(text, maximum) or int(text) > maximum:
        message = INTEGER_INVALID.format(name=name, maximum=maximum, text=text)
        raise FilterValueError(message, parameter=parameter)
    return int(text)


def field_match_parse(text: str) -> FieldMatch:
    """`deal.stage:won` as the `FieldMatch` it asks for."""
    path, colon, expected = text.partition(":")
    segments = tuple(path.split("."))
    if not colon or not path or not all(segments):
        raise FilterValueError(WHERE_INVALID.format(text=text), parameter="where")
    return FieldMatch(path=segments, expected=expected)


def key_bytes_parse(text: str) -> bytes:
    """The bytes a `key_base64=` value names (either alphabet, padding optional)."""
    data = text.rstrip("=").replace("-", "+").replace("_", "/")
    if not _BASE64_ANY.fullmatch(text) or len(data) % 4 == 1:
        raise FilterValueError(KEY_BASE64_INVALID.format(text=text), parameter="key_base64")
    try:
        return binascii.a2b_base64(data + "=" * (-len(data) % 4), strict_mode=True)
    except binascii.Error as error:  # unreachable after the pattern; kept as a refusal, not a crash
        raise FilterValueError(KEY_BASE64_INVALID.format(text=text), parameter="key_base64") from error


def event_filter_parse(values: Mapping[str, Sequence[str]]) -> EventFilter:
    """The filter that these parameters' values ask for (absent parameters: no condition)."""
    binary = (key_form_of_bytes(key_bytes_parse(text)) for text in values.get("key_base64", ()))
    keys: frozenset[Hashable] = frozenset([*values.get("key", ()), *binary])
    return EventFilter(
        kinds=frozenset(values.get("kind", ())),
        keys=keys,
        partitions=frozenset(
            integer_parse(p, name="partition", maximum=PARTITION_MAX, parameter="partition")
            for p in values.get("partition", ())
        ),
        fields=tuple(field_match_parse(text) for text in values.get("where", ())),
    )
