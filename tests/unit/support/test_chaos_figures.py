"""The chaos run's recovery figures (tests/support/chaos_figures.py)."""

from __future__ import annotations

from types import SimpleNamespace

from tests.support.chaos_figures import ack_times, recoveries
from tests.support.faults import Record


def client(arrivals: dict, expected: set) -> SimpleNamespace:
    return SimpleNamespace(arrivals=arrivals, expected=expected)


def test_a_record_nobody_acknowledged_takes_the_time_of_the_next_one_in_its_partition():
    records = [Record(0, offset, None, b"x", ()) for offset in range(4)]
    times = ack_times({(0, 0): 1.0, (0, 2): 5.0}, records)
    assert times == {(0, 0): 1.0, (0, 1): 5.0, (0, 2): 5.0, (0, 3): float("inf")}


def test_recovery_is_until_everything_up_to_the_first_event_after_the_heal_arrived_or_never():
    acked = {(0, 0): 1.0, (0, 1): 2.0, (0, 2): 6.0, (0, 3): 9.0}
    everything = set(acked)
    on_time = client({(0, 0): 1.1, (0, 1): 2.1, (0, 2): 8.5, (0, 3): 9.1}, everything)
    late = client({(0, 0): 1.2, (0, 1): 7.0, (0, 2): 7.5, (0, 3): 9.2}, everything)
    # Healed at 5: the first event after is (0, 2) at 6; the last client had it at 8.5.
    assert recoveries([on_time, late], acked, [5.0]) == [3.5]
    lost = client({(0, 0): 1.2, (0, 1): 2.2, (0, 3): 9.2}, everything)
    assert recoveries([on_time, lost], acked, [1.5, 8.0]) == [0.7, None]
