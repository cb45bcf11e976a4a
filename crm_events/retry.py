"""Exponential backoff with jitter, for reconnecting to Kafka and Redis."""

from __future__ import annotations

import random


class Backoff:
    """Delays of 0.5s, 1s, 2s ... up to `maximum`, each with up to 20% jitter.

    Jitter keeps many processes that lost the same broker from retrying in step.
    """

    def __init__(self, *, initial: float = 0.5, maximum: float = 30.0) -> None:
        self.initial = initial
        self.maximum = maximum
        self._attempt = 0

    def next_delay(self) -> float:
        delay = min(self.maximum, self.initial * (2**self._attempt))
        self._attempt += 1
        return delay * random.uniform(0.8, 1.0)

    def reset(self) -> None:
        self._attempt = 0
