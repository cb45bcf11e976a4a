"""The benchmark's summary of the hub's write rounds in a window, from two samples of the histogram."""

from bench.context import write_rounds_window


def sample(count: float, total: float, buckets: dict[str, float]) -> dict:
    return {"count": count, "sum_s": total, "buckets": buckets}


def test_rounds_mean_and_the_bound_under_which_99_percent_finished():
    before = sample(10, 1.0, {"0.01": 10, "0.1": 10, "0.5": 10, "+Inf": 10})
    # 100 rounds in the window: 98 under 10 ms, one under 100 ms, one under 500 ms.
    after = sample(110, 1.0 + 0.98 + 0.05 + 0.3, {"0.01": 108, "0.1": 109, "0.5": 110, "+Inf": 110})
    window = write_rounds_window(before, after)
    assert window == {"rounds": 100, "mean_ms": 13.3, "p99_at_most_s": "0.1"}


def test_a_window_without_rounds_says_so():
    same = sample(5, 0.5, {"+Inf": 5})
    assert write_rounds_window(same, same) == {"rounds": 0}
