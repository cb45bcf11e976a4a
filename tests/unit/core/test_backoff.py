from hypothesis import given
from hypothesis import strategies as st

from crm_events.core.backoff import Backoff


def test_delays_double_up_to_the_maximum_then_stay_there():
    backoff = Backoff(initial=0.5, maximum=3.0)
    delays = [backoff.next_delay() for _ in range(8)]
    for delay, nominal in zip(delays, [0.5, 1, 2, 3, 3, 3, 3, 3], strict=True):
        assert 0.8 * nominal <= delay <= nominal


def test_a_hundred_thousand_attempts_stay_bounded():
    # The old formula raised OverflowError on about the 1,025th attempt.
    backoff = Backoff(initial=0.5, maximum=30.0)
    assert all(0 < backoff.next_delay() <= 30.0 for _ in range(100_000))


@given(
    initial=st.floats(min_value=1e-6, max_value=1e3),
    factor=st.floats(min_value=1.0, max_value=1e6),
    attempts=st.integers(min_value=0, max_value=5_000),
)
def test_any_bounds_and_attempt_count_give_a_delay_within_them(initial, factor, attempts):
    maximum = initial * factor
    backoff = Backoff(initial=initial, maximum=maximum)
    for _ in range(attempts):
        backoff.next_delay()
    assert 0 < backoff.next_delay() <= maximum


def test_reset_starts_again_from_the_initial_delay():
    backoff = Backoff(initial=1.0, maximum=8.0)
    for _ in range(10):
        backoff.next_delay()
    backoff.reset()
    assert backoff.next_delay() <= 1.0
