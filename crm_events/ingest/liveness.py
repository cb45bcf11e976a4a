"""Whether the consume loop still makes progress: what the consumer's `/livez` answers.

The loop marks each turn: a poll that returned (records or none: an idle topic is alive), a
batch published and committed, an attempt to reach Kafka. What does not mark it is waiting
inside a turn: a publish the channel layer does not accept (Redis paused, full or away, past
its retries) or an await that never returns. So a loop stuck anywhere goes stale after
CONSUMER_LIVENESS_MAX_AGE seconds, while the process and its metrics thread live on, and
the orchestrator restarts it: at-least-once delivery makes a restart safe (offsets are
committed only after publishing; web processes drop replays).

Read from the metrics server's thread: one float, written by the event loop's thread.
"""

from __future__ import annotations

import time

LOOP_STALE = "the consume loop made no progress for {age:.1f} s (CONSUMER_LIVENESS_MAX_AGE={max_age:g})"


class LoopProgress:
    def __init__(self) -> None:
        self.last_at = time.monotonic()  # a loop that just started is alive

    def beat(self) -> None:
        self.last_at = time.monotonic()

    def age(self) -> float:
        return time.monotonic() - self.last_at

    def stale(self, max_age: float) -> str | None:
        """Why the loop counts as stuck, or None while it is alive."""
        age = self.age()
        return LOOP_STALE.format(age=age, max_age=max_age) if age > max_age else None
