"""Reporting channel-layer messages the hub skips: counted always, logged sparingly.

A message the hub does not understand (a consumer of a newer version, a stray
publisher, a garbled record) is skipped, never fatal. Each one is counted by
reason in `aetherlink_hub_foreign_messages_total`; a log line is written for the
first of each reason and then at most once per `LOG_INTERVAL` seconds per reason,
with how many were skipped since, so a flood cannot flood the log.
"""

from __future__ import annotations

import logging
import reprlib
import time
from collections import Counter

from crm_events import metrics

logger = logging.getLogger(__name__)

LOG_INTERVAL = 60.0


def _sample_repr() -> reprlib.Repr:
    """A bounded picture of a message: any size and nesting gives a short line."""
    shape = reprlib.Repr()  # Python 3.11's takes no arguments
    shape.maxlevel, shape.maxdict, shape.maxlist, shape.maxstring, shape.maxother = 4, 8, 8, 80, 80
    return shape


_SAMPLE = _sample_repr()


class ForeignMessages:
    def __init__(self) -> None:
        self._clock = time.monotonic
        self._logged_at: dict[str, float] = {}
        self._unlogged: Counter[str] = Counter()
        self.last_reason: str | None = None

    def skipped(self, reason: str, sample: object) -> None:
        metrics.foreign_message(reason)
        self.last_reason = reason
        now = self._clock()
        last = self._logged_at.get(reason)
        if last is not None and now - last < LOG_INTERVAL:
            self._unlogged[reason] += 1
            return
        self._logged_at[reason] = now
        since = self._unlogged.pop(reason, 0)
        logger.warning(
            "skipped a channel-layer message the hub does not understand (%s)%s: %s",
            reason, f"; {since} more skipped since the last line" if since else "", _SAMPLE.repr(sample),
        )
