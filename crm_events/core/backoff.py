"""Exponential backoff with jitter, for reconnecting to Kafka and Redis."""

from __future__ import annotations

import math
import random


class Backoff:
    """Delays of 0.5s, 1s, 2s ... up to `maximum`, each with up to 20% jitter.

    Jitter keeps many processes that lost the same broker from retrying in step. The
    attempt counter stops growing once the delay has reached `maximum`, so the delay
    is bounded by construction at any number of attempts: an outage of a week is just
    many attempts at `maximum` (an unbounded exponent overflowed a float after about
    1,025 attempts, which ended the retry loop for good).
    """

    def __init__(self, *, initial: float = 0.5, maximum: float = 30.0) -> None:
        if not (0 < initial <= maximum and math.isfinite(maximum)):
            raise ValueError(f"backoff needs 0 < initial <= maximum < inf, got {initial}, {maximum}")
        self.initial = initial
        self.maximum = maximum
        # The first attempt whose delay reaches the maximum; the counter stays there.
        self._ceiling = max(0, math.ceil(math.log2(maximum / initial)))
        self._attempt = 0

    def next_delay(self) -> float:
        delay = min(self.maximum, math.ldexp(self.initial, self._attempt))  # initial * 2**attempt
        self._attempt = min(self._attempt + 1, self._ceiling)
        return delay * random.uniform(0.8, 1.0)

    def reset(self) -> None:
        self._attempt = 0
