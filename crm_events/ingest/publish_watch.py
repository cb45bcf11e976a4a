"""Whether publishing makes progress: records waiting, and the layer accepting none of them.

The consumer's heartbeats still get through while Redis refuses the larger records
messages, so a heartbeat alone does not prove that records flow. The watch measures, while
a poll's records wait to be published, the time since the layer last accepted a records
message (or since they started waiting); past `threshold` seconds publishing is stalled,
and the heartbeat says so (`stalled`: how long, and the last reason), so `/status` of every
web process can say it. An idle consumer (nothing to publish) is never stalled.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

logger = logging.getLogger(__name__)

NO_REASON = "no reason given yet"
STALLED_LOG = "publishing stalled for %.0f s: %s"
RESUMED_LOG = "publishing resumed after a stall of %.0f s"


class PublishWatch:
    def __init__(self, threshold: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.threshold = threshold
        self._clock = clock
        self._waiting_since: float | None = None  # the last progress while records wait; None: idle
        self._reason = NO_REASON
        self._reported = False  # the stall was logged (its end will be too)

    def records_waiting(self) -> None:
        """A poll's records are about to be published."""
        if self._waiting_since is None:
            self._waiting_since = self._clock()

    def accepted(self) -> None:
        """The layer accepted a records message: progress."""
        self._progress()
        self._waiting_since = self._clock()

    def failed(self, reason: str) -> None:
        self._reason = reason

    def idle(self) -> None:
        """Every record polled was published."""
        self._progress()
        self._waiting_since = None

    def stalled(self) -> tuple[float, str] | None:
        """(seconds without progress, the last reason) once past the threshold, else None;
        logged once when a stall is first seen."""
        if self._waiting_since is None:
            return None
        seconds = self._clock() - self._waiting_since
        if seconds <= self.threshold:
            return None
        if not self._reported:
            self._reported = True
            logger.warning(STALLED_LOG, seconds, self._reason)
        return seconds, self._reason

    def _progress(self) -> None:
        if self._reported and self._waiting_since is not None:
            logger.info(RESUMED_LOG, self._clock() - self._waiting_since)
        self._reported = False
        self._reason = NO_REASON
