"""Watches every event that reaches this web process's hub, for metrics and the canary.

The observer sees each event once per process, as the hub dispatches it (live or
repaired from Kafka): it observes the Kafka-to-hub latency, counts events per
topic and remembers when the last canary arrived. It is not a subscriber, so it
counts in no stream total and never holds the hub's drain at shutdown. Each hub
owns one, `hub.observer`.
"""

from __future__ import annotations

import time
from typing import Any

from crm_events import metrics
from crm_events.core.canary import is_canary


class HubObserver:
    def __init__(self) -> None:
        self.last_canary_at: float | None = None  # time.monotonic()

    def event_seen(self, payload: dict[str, Any]) -> None:
        """Called for every event the hub dispatches; never raises for odd payloads."""
        timestamp = payload.get("timestamp")
        metrics.event_received(str(payload.get("topic")), timestamp)
        if is_canary(payload):
            self.last_canary_at = time.monotonic()
            if isinstance(timestamp, int) and timestamp > 0:
                metrics.CANARY_DELAY.set(max(0.0, time.time() - timestamp / 1000))

    def canary_age(self) -> float | None:
        if self.last_canary_at is None:
            return None
        return time.monotonic() - self.last_canary_at

    def metrics_refresh(self) -> None:
        age = self.canary_age()
        metrics.CANARY_AGE.set(float("nan") if age is None else age)
