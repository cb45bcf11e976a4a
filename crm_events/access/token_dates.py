"""A JWT's time claims (`exp`, `nbf`, `iat`) as RFC 7519 NumericDates, checked here, not by PyJWT.

PyJWT reads them with `int()`: a string of digits or `true` passes for a date, an `exp` of
`1e400` (which JSON parses as infinity) is refused as undecodable, and one of `10**400`
passes, to overflow `float()` afterwards. Here a time claim is a JSON number (never a bool,
a string or NaN) within what a datetime can hold (the years 1 to 9999 UTC), or it is malformed.

`token_window(claims, leeway=, now=)` judges a token's claims at `now`, with the same leeway
on every side: accepted until `exp` plus the leeway (the moment the same token would be
refused, hence when a stream admitted on it ends), not before `nbf` or `iat` minus it.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

TIME_CLAIMS = ("exp", "nbf", "iat")
EARLIEST = datetime.min.replace(tzinfo=UTC).timestamp()
# The last whole second: the float of datetime.max's own timestamp rounds up into the year 10000.
LATEST = datetime.max.replace(microsecond=0, tzinfo=UTC).timestamp()


class Verdict(enum.Enum):
    VALID = "valid"
    MALFORMED = "malformed"  # a time claim that is no NumericDate a datetime can hold
    EXPIRED = "expired"
    NOT_YET_VALID = "not_yet_valid"


@dataclass(frozen=True, slots=True)
class TokenWindow:
    verdict: Verdict
    accepted_until: float | None = None  # Unix time: `exp` plus the leeway; None without `exp`


def numeric_date(value: object) -> float | None:
    """The claim as seconds since the epoch, or None if it is no date a datetime can hold."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if not EARLIEST <= value <= LATEST:  # exact for any int, however large; false for NaN
        return None
    return float(value)


def token_window(claims: Mapping[str, Any], *, leeway: float, now: float) -> TokenWindow:
    """Whether a token's time claims admit it at `now`; absent claims are not checked (which
    ones are required is the caller's business)."""
    dates = {name: numeric_date(claims[name]) for name in TIME_CLAIMS if name in claims}
    if None in dates.values():
        return TokenWindow(Verdict.MALFORMED)
    exp, nbf, iat = (dates.get(name) for name in TIME_CLAIMS)
    accepted_until = None if exp is None else exp + leeway
    if accepted_until is not None and accepted_until <= now:
        return TokenWindow(Verdict.EXPIRED, accepted_until)
    if any(start is not None and start > now + leeway for start in (nbf, iat)):
        return TokenWindow(Verdict.NOT_YET_VALID, accepted_until)
    return TokenWindow(Verdict.VALID, accepted_until)
