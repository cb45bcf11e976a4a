"""A JWT's time claims as dates: any JSON value in, a date a datetime can hold or None out."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from crm_events.access.token_dates import (
    EARLIEST,
    LATEST,
    TokenWindow,
    Verdict,
    numeric_date,
    token_window,
)

NOW = 1_800_000_000.0


@pytest.mark.parametrize(
    "value",
    [10**400, -(10**400), 2**63, float("inf"), float("-inf"), float("nan"), 1e300, True, False,
     "1800000000", "", None, [1800000000], {"exp": 1}, LATEST + 1, EARLIEST - 1],
    ids=["huge", "huge-negative", "2**63", "inf", "-inf", "nan", "1e300", "true", "false", "digits",
         "empty-string", "null", "list", "object", "after-9999", "before-year-1"],
)
def test_values_a_datetime_cannot_hold_are_no_dates(value):
    assert numeric_date(value) is None


@pytest.mark.parametrize(
    ("value", "seconds"),
    [(0, 0.0), (-1, -1.0), (1_800_000_000, 1.8e9), (1.8e9 + 0.5, 1.8e9 + 0.5), (LATEST, LATEST),
     (EARLIEST, EARLIEST), (int(LATEST), float(int(LATEST)))],
    ids=["epoch", "before-epoch", "int", "float", "end-of-9999", "year-1", "int-end-of-9999"],
)
def test_numbers_within_the_years_1_to_9999_are_dates(value, seconds):
    assert numeric_date(value) == seconds


def test_the_bounds_are_the_first_and_last_moment_a_datetime_holds():
    assert datetime.fromtimestamp(EARLIEST, UTC) == datetime.min.replace(tzinfo=UTC)
    assert datetime.fromtimestamp(LATEST, UTC) == datetime.max.replace(microsecond=0, tzinfo=UTC)


@given(st.integers() | st.floats() | st.booleans() | st.text(max_size=4) | st.none())
@example(10**400)
@example(float("nan"))
@example(253402300799.9999)  # rounds into the year 10000
def test_any_value_is_a_date_a_datetime_holds_or_none(value):
    seconds = numeric_date(value)
    if seconds is None:
        return
    assert not isinstance(value, bool) and math.isfinite(seconds)
    datetime.fromtimestamp(seconds, UTC)  # never raises: that is the point


@pytest.mark.parametrize(
    ("claims", "leeway", "window"),
    [
        ({"exp": NOW + 10}, 0, TokenWindow(Verdict.VALID, NOW + 10)),
        ({"exp": NOW}, 0, TokenWindow(Verdict.EXPIRED, NOW)),  # `exp` is the first moment refused
        ({"exp": NOW - 5}, 30, TokenWindow(Verdict.VALID, NOW + 25)),  # inside the leeway: until exp+leeway
        ({"exp": NOW - 30}, 30, TokenWindow(Verdict.EXPIRED, NOW)),
        ({"exp": NOW + 10, "nbf": NOW + 31}, 30, TokenWindow(Verdict.NOT_YET_VALID, NOW + 40)),
        ({"exp": NOW + 10, "nbf": NOW + 30, "iat": NOW + 30}, 30, TokenWindow(Verdict.VALID, NOW + 40)),
        ({"exp": NOW + 10, "iat": NOW + 1}, 0, TokenWindow(Verdict.NOT_YET_VALID, NOW + 10)),
        ({"exp": 10**400}, 30, TokenWindow(Verdict.MALFORMED)),
        ({"exp": NOW + 10, "nbf": float("nan")}, 30, TokenWindow(Verdict.MALFORMED)),
        ({"exp": NOW - 100, "iat": "yesterday"}, 0, TokenWindow(Verdict.MALFORMED)),  # malformed first
        ({}, 0, TokenWindow(Verdict.VALID, None)),  # which claims are required is not decided here
    ],
    ids=["valid", "at-exp", "in-leeway", "leeway-over", "nbf-future", "nbf-iat-in-leeway", "iat-future",
         "huge-exp", "nan-nbf", "string-iat", "none"],
)
def test_a_token_window_at_now(claims, leeway, window):
    assert token_window(claims, leeway=leeway, now=NOW) == window
